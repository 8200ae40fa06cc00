// Starting a program for a slot: its notify socket and output pipes first (they
// must exist before it can use them), then uv_spawn of the trampoline.
#include "master/exec_worker.hpp"

#include <unistd.h>

#include <string>

#include "common/exec_launch.hpp"
#include "common/log.hpp"
#include "master/worker_process.hpp"

extern char** environ;

namespace preforkd {
namespace {

std::vector<std::string> inherited_environment() {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) env.emplace_back(*e);
  return env;
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

ExecWorker::ExecWorker(uv_loop_t* loop, Events& events)
    : loop_(loop), events_(events), notify_(loop), stdout_(loop, "stdout"), stderr_(loop, "stderr"),
      process_(this) {}

pid_t ExecWorker::spawn(int slot, unsigned generation, const Config& config, const std::vector<int>& listen_fds,
                        std::uint64_t serial, std::uint64_t watchdog_usec) {
  const ExecConfig& exec = config.exec;
  const pid_t master = ::getpid();
  // Whom the program will run as, hence whose datagrams are its own.
  const bool switches_user = config.run_as.set() && ::geteuid() == 0;
  const uid_t sender = switches_user ? static_cast<uid_t>(config.run_as.uid) : ::geteuid();
  std::string error;
  const std::string name = "preforkd/" + std::to_string(master) + "/" + std::to_string(slot) + "/" +
                           std::to_string(generation) + "/" + std::to_string(serial);
  if (!notify_.open(name, sender, [this](const NotifyMessage& m) { events_.on_exec_notice(pid_, m); }, &error)) {
    PF_LOG_ERROR("slot %d: %s", slot, error.c_str());
    return UV_EINVAL;
  }
  uv_stream_t* out = stdout_.create();
  uv_stream_t* err = stderr_.create();
  if (out == nullptr || err == nullptr) return UV_EINVAL;

  std::vector<uv_stdio_container_t> stdio(kFirstListenFd);
  stdio[0].flags = UV_IGNORE;  // /dev/null
  stdio[1].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
  stdio[1].data.stream = out;
  stdio[2].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
  stdio[2].data.stream = err;
  inherit_fds(stdio, kFirstListenFd, listen_fds);

  ExecLaunch launch;
  launch.slot = slot;
  launch.generation = generation;
  launch.master_pid = master;
  launch.fd_count = static_cast<int>(listen_fds.size());
  launch.user = config.run_as.user;
  launch.uid = config.run_as.uid;
  launch.gid = config.run_as.gid;
  launch.nofile = config.worker_rlimit_nofile;
  launch.directory = exec.directory;
  launch.program = exec.program;
  launch.argv = exec.command;
  std::vector<std::string> args = encode_trampoline_args(launch);

  ExecWorkerEnvironment worker_env;
  worker_env.slot = slot;
  worker_env.generation = generation;
  for (const auto& listener : config.listeners) worker_env.fd_names.push_back(listener.name);
  worker_env.notify_socket = notify_.address();
  worker_env.watchdog_usec = watchdog_usec;
  std::vector<std::string> env = exec_environment(inherited_environment(), exec, worker_env);

  std::vector<char*> argv = c_strings(args);
  std::vector<char*> envp = c_strings(env);
  uv_process_options_t options{};
  options.file = kOwnImage;
  options.args = argv.data();
  options.env = envp.data();
  options.exit_cb = on_exit;
  options.stdio = stdio.data();
  options.stdio_count = static_cast<int>(stdio.size());

  int rc = uv_spawn(loop_, process_.get(), &options);
  process_.mark_initialized();  // initialised even when it fails: it must be closed either way
  if (rc != 0) {
    PF_LOG_ERROR("slot %d: uv_spawn %s (exec %s): %s", slot, kOwnImage, exec.program.c_str(), uv_strerror(rc));
    return rc;
  }
  pid_ = process_.get()->pid;
  const std::string who =
      "program slot=" + std::to_string(slot) + " gen=" + std::to_string(generation) + " pid=" + std::to_string(pid_);
  stdout_.start(who);
  stderr_.start(who);
  PF_LOG_INFO("slot %d: started %s as worker %d of generation %u (NOTIFY_SOCKET=%s)", slot, exec.program.c_str(),
              static_cast<int>(pid_), generation, notify_.address().c_str());
  return pid_;
}

void ExecWorker::on_exit(uv_process_t* process, int64_t status, int signal) {
  auto* self = owner_of<ExecWorker>(process);
  if (!self) return;
  // Its last words (a traceback, "No such file or directory") before its exit is
  // reported, so that the log reads in order.
  self->stdout_.finish();
  self->stderr_.finish();
  self->notify_.close();
  std::string last = self->stderr_.last_line();
  if (last.empty()) last = self->stdout_.last_line();
  // Last statement: the owner may destroy us inside this call.
  self->events_.on_exec_exit(self->pid_, signal ? -1 : static_cast<int>(status), signal, std::move(last));
}

}  // namespace preforkd
