// USR2, as nginx does it: re-execute the binary (possibly replaced on disk) as a
// new master that inherits every slot socket, so not one listener closes. The pid
// file moves to PID_FILE.oldbin meanwhile. The new master starts its workers on
// the same sockets and, once they are ready, sends the old one QUIT; if it dies
// first, the pid file is restored and the old master simply keeps serving.
#include "master/upgrade.hpp"

#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <utility>

#include "common/log.hpp"
#include "master/worker_process.hpp"

namespace preforkd {
namespace {

std::string oldbin_of(const std::string& pid_file) { return pid_file + ".oldbin"; }

// The pid file must name this master again before the failure is logged: scripts
// (and the tests) act on the log line.
void restore_pid_file(const std::string& pid_file) {
  if (::rename(oldbin_of(pid_file).c_str(), pid_file.c_str()) != 0)
    PF_LOG_ERROR("upgrade: rename %s back to %s: %s", oldbin_of(pid_file).c_str(), pid_file.c_str(),
                 std::strerror(errno));
}

// Our environment with the socket description added (replacing a stale one) and
// NOTIFY_SOCKET put back: the master took it out of its own environment for the
// workers' sake, but the successor needs it to send MAINPID= and READY=1.
std::vector<std::string> successor_environment(const Upgrade::Request& request) {
  std::string inherited = std::string(kInheritedSocketsEnv) + "=" + request.sockets;
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, inherited.c_str(), std::strlen(kInheritedSocketsEnv) + 1) != 0) env.emplace_back(*e);
  env.push_back(inherited);
  if (!request.notify_socket.empty()) env.push_back("NOTIFY_SOCKET=" + request.notify_socket);
  return env;
}

}  // namespace

Upgrade::Upgrade(std::string pid_file, std::function<void()> failed)
    : pid_file_(std::move(pid_file)), failed_(std::move(failed)), process_(this) {}

std::unique_ptr<Upgrade> Upgrade::start(uv_loop_t* loop, const Request& request, std::function<void()> failed) {
  if (::rename(request.pid_file.c_str(), oldbin_of(request.pid_file).c_str()) != 0) {
    PF_LOG_ERROR("upgrade: rename %s to %s: %s", request.pid_file.c_str(), oldbin_of(request.pid_file).c_str(),
                 std::strerror(errno));
    return nullptr;
  }
  std::vector<std::string> env_strings = successor_environment(request);
  std::vector<char*> env;
  for (auto& e : env_strings) env.push_back(e.data());
  env.push_back(nullptr);
  std::string self_pid = std::to_string(getpid());
  const char* args[] = {request.binary.c_str(), "-c",     request.config_path.c_str(), "--upgrade-from",
                        self_pid.c_str(),       nullptr};
  std::vector<uv_stdio_container_t> stdio(kFirstInheritedFd);
  stdio[0].flags = UV_IGNORE;
  for (int fd = 1; fd < kFirstInheritedFd; ++fd) {
    stdio[fd].flags = UV_INHERIT_FD;
    stdio[fd].data.fd = fd;
  }
  inherit_fds(stdio, kFirstInheritedFd, request.fds);
  uv_process_options_t options{};
  options.file = request.binary.c_str();
  options.args = const_cast<char**>(args);
  options.env = env.data();
  options.stdio = stdio.data();
  options.stdio_count = static_cast<int>(stdio.size());
  options.exit_cb = on_exit;

  std::unique_ptr<Upgrade> upgrade(new Upgrade(request.pid_file, std::move(failed)));
  int rc = uv_spawn(loop, upgrade->process_.get(), &options);
  // uv_spawn initialises the handle even when it fails, so it must be closed either way.
  upgrade->process_.mark_initialized();
  if (rc != 0) {
    restore_pid_file(request.pid_file);
    PF_LOG_ERROR("upgrade: uv_spawn %s: %s; this master keeps serving", request.binary.c_str(), uv_strerror(rc));
    return nullptr;
  }
  upgrade->pid_ = upgrade->process_.get()->pid;
  PF_LOG_NOTICE("upgrade: new master %d started from %s with %zu socket(s)", static_cast<int>(upgrade->pid_),
                request.binary.c_str(), request.fds.size());
  return upgrade;
}

bool Upgrade::allows(int signum) const {
  if (signum == SIGUSR2) {
    PF_LOG_WARN("upgrade: refused: new master %d is still starting (QUIT it to abort that upgrade)",
                static_cast<int>(pid_));
    return false;
  }
  if (signum == SIGHUP) {
    PF_LOG_WARN("reload: refused during the upgrade: new master %d has read the config itself; "
                "reload it once it serves (the pid file names it)",
                static_cast<int>(pid_));
    return false;
  }
  return true;
}

void Upgrade::on_exit(uv_process_t* process, int64_t status, int signal) {
  auto* self = owner_of<Upgrade>(process);
  if (!self) return;
  restore_pid_file(self->pid_file_);
  PF_LOG_ERROR("upgrade failed: new master %d exited (%s %d); this master keeps serving", static_cast<int>(self->pid_),
               signal ? "signal" : "status", signal ? signal : static_cast<int>(status));
  // The owner destroys us inside this call: the callback runs from the stack, not
  // from the member it would destroy.
  auto failed = std::move(self->failed_);
  failed();
}

void hand_over_from(pid_t old_master) {
  if (::getppid() != old_master) {
    PF_LOG_NOTICE("upgrade: serving; the old master %d is gone already", static_cast<int>(old_master));
    return;
  }
  PF_LOG_NOTICE("upgrade: serving; asking the old master %d to stop gracefully", static_cast<int>(old_master));
  if (::kill(old_master, SIGQUIT) != 0)
    PF_LOG_WARN("upgrade: kill(%d, SIGQUIT): %s", static_cast<int>(old_master), std::strerror(errno));
}

}  // namespace preforkd
