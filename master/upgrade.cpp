// USR2, as nginx does it: re-execute the binary (possibly replaced on disk) as a
// new master that inherits every slot socket, so not one listener closes. The pid
// file moves to PID_FILE.oldbin meanwhile (and the control socket to
// PATH.oldbin). The new master starts its workers on the same sockets and, once
// they are ready, says so on the report pipe; if it exits, the pid file and the
// control socket are put back and the supervisor hears why.
#include "master/upgrade.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <utility>

#include "common/log.hpp"
#include "master/control_socket.hpp"
#include "master/upgrade_report.hpp"
#include "master/worker_process.hpp"

namespace preforkd {
namespace {

constexpr std::size_t kMaxReportLine = 4096;

std::string oldbin_of(const std::string& pid_file) { return pid_file + ".oldbin"; }

// The pid file must name this master again before the failure is logged: scripts
// (and the tests) act on the log line.
void restore_pid_file(const std::string& pid_file) {
  if (::rename(oldbin_of(pid_file).c_str(), pid_file.c_str()) != 0)
    PF_LOG_ERROR("upgrade: rename %s back to %s: %s", oldbin_of(pid_file).c_str(), pid_file.c_str(),
                 std::strerror(errno));
}

// Our environment with the socket description and the report fd added
// (replacing stale ones) and NOTIFY_SOCKET put back: the master took it out of
// its own environment for the workers' sake, but the successor needs it to send
// MAINPID= and READY=1.
std::vector<std::string> successor_environment(const Upgrade::Request& request, int report_fd) {
  std::string inherited = std::string(kInheritedSocketsEnv) + "=" + request.sockets;
  std::string report = std::string(upgrade_report::kReportFdEnv) + "=" + std::to_string(report_fd);
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, inherited.c_str(), std::strlen(kInheritedSocketsEnv) + 1) != 0 &&
        std::strncmp(*e, report.c_str(), std::strlen(upgrade_report::kReportFdEnv) + 1) != 0)
      env.emplace_back(*e);
  env.push_back(inherited);
  env.push_back(report);
  if (!request.notify_socket.empty()) env.push_back("NOTIFY_SOCKET=" + request.notify_socket);
  return env;
}

std::string describe_exit(int64_t status, int signal) {
  return signal ? "signal " + std::to_string(signal) + " (" + strsignal(signal) + ")"
                : "status " + std::to_string(status);
}

}  // namespace

Upgrade::Upgrade(const Request& request, Events& events)
    : pid_file_(request.pid_file), control_(request.control), events_(events), process_(this), report_(this) {}

void Upgrade::put_back() {
  restore_pid_file(pid_file_);
  if (control_) control_->move_back();
}

std::unique_ptr<Upgrade> Upgrade::start(uv_loop_t* loop, const Request& request, Events& events,
                                        std::string* error) {
  if (::rename(request.pid_file.c_str(), oldbin_of(request.pid_file).c_str()) != 0) {
    *error = "rename " + request.pid_file + " to " + oldbin_of(request.pid_file) + ": " + std::strerror(errno);
    PF_LOG_ERROR("upgrade: %s", error->c_str());
    return nullptr;
  }
  if (request.control && !request.control->move_aside(error)) {
    restore_pid_file(request.pid_file);
    PF_LOG_ERROR("upgrade: %s", error->c_str());
    return nullptr;
  }
  std::unique_ptr<Upgrade> upgrade(new Upgrade(request, events));
  auto fail = [&](const std::string& what) -> std::unique_ptr<Upgrade> {
    *error = what;
    upgrade->put_back();
    PF_LOG_ERROR("upgrade: %s; this master keeps serving", what.c_str());
    return nullptr;
  };
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) return fail(std::string("pipe2: ") + std::strerror(errno));
  const int report_child_fd = kFirstInheritedFd + static_cast<int>(request.fds.size());

  std::vector<std::string> env_strings = successor_environment(request, report_child_fd);
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
  std::vector<int> fds = request.fds;
  fds.push_back(report[1]);
  inherit_fds(stdio, kFirstInheritedFd, fds);
  uv_process_options_t options{};
  options.file = request.binary.c_str();
  options.args = const_cast<char**>(args);
  options.env = env.data();
  options.stdio = stdio.data();
  options.stdio_count = static_cast<int>(stdio.size());
  options.exit_cb = on_exit;

  int rc = uv_spawn(loop, upgrade->process_.get(), &options);
  // uv_spawn initialises the handle even when it fails, so it must be closed either way.
  upgrade->process_.mark_initialized();
  ::close(report[1]);  // the child's now; its EOF tells us nothing the exit does not
  if (rc != 0) {
    ::close(report[0]);
    return fail("uv_spawn " + request.binary + ": " + uv_strerror(rc));
  }
  upgrade->pid_ = upgrade->process_.get()->pid;
  rc = uv_pipe_init(loop, upgrade->report_.get(), /*ipc=*/0);
  if (rc == 0) {
    upgrade->report_.mark_initialized();
    rc = uv_pipe_open(upgrade->report_.get(), report[0]);
    if (rc != 0) ::close(report[0]);
  } else {
    ::close(report[0]);
  }
  if (rc == 0)
    rc = uv_read_start(
        upgrade->report_.stream(),
        [](uv_handle_t* h, size_t, uv_buf_t* buf) {
          auto* self = owner_of<Upgrade>(h);
          *buf = uv_buf_init(self->read_buffer_, sizeof self->read_buffer_);
        },
        on_report);
  // Without the pipe the upgrade still works; only its news come by signal and exit.
  if (rc != 0) PF_LOG_WARN("upgrade: report pipe: %s", uv_strerror(rc));
  PF_LOG_NOTICE("upgrade: new master %d started from %s with %zu socket(s)", static_cast<int>(upgrade->pid_),
                request.binary.c_str(), request.fds.size());
  return upgrade;
}

void Upgrade::on_report(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* self = owner_of<Upgrade>(stream);
  if (!self) return;
  if (nread < 0) {
    uv_read_stop(stream);  // EOF: the new master has exited or closed it; its exit follows
    return;
  }
  self->report_buffer_.append(buf->base, static_cast<std::size_t>(nread));
  std::size_t end;
  // A callback may destroy us (not today: serving only parks or stops), so each
  // line is taken off the buffer before it is acted on.
  while ((end = self->report_buffer_.find('\n')) != std::string::npos) {
    std::string line = self->report_buffer_.substr(0, end);
    self->report_buffer_.erase(0, end + 1);
    self->report_line(line);
  }
  if (self->report_buffer_.size() > kMaxReportLine) self->report_buffer_.clear();
}

void Upgrade::report_line(const std::string& line) {
  if (line.rfind("error ", 0) == 0) {
    if (reported_error_.empty()) reported_error_ = line.substr(6);
  } else if ((line == "serving auto" || line == "serving manual") && !serving_) {
    serving_ = true;
    events_.on_successor_serving(line == "serving manual" ? UpgradeHandover::manual : UpgradeHandover::automatic);
  } else {
    PF_LOG_WARN("upgrade: new master %d reported \"%.100s\"; ignored", static_cast<int>(pid_), line.c_str());
  }
}

void Upgrade::on_exit(uv_process_t* process, int64_t status, int signal) {
  auto* self = owner_of<Upgrade>(process);
  if (!self) return;
  // Its last words may still sit in the pipe: the exit can be seen first.
  if (self->report_) {
    uv_os_fd_t fd = -1;
    if (uv_fileno(self->report_.handle(), &fd) == 0) {
      char buf[1024];
      ssize_t n;
      while ((n = ::read(fd, buf, sizeof buf)) > 0) {
        self->report_buffer_.append(buf, static_cast<std::size_t>(n));
        if (self->report_buffer_.size() > kMaxReportLine) break;
      }
      self->report_buffer_ += '\n';  // a last line without its newline counts too
      std::size_t end;
      while ((end = self->report_buffer_.find('\n')) != std::string::npos) {
        std::string line = self->report_buffer_.substr(0, end);
        self->report_buffer_.erase(0, end + 1);
        if (!line.empty() && line.rfind("serving", 0) != 0) self->report_line(line);
      }
    }
  }
  self->put_back();
  std::string how = describe_exit(status, signal);
  std::string why = self->reported_error_.empty()
                        ? "new master " + std::to_string(self->pid_) + " exited (" + how + ") before it served"
                        : self->reported_error_;
  if (self->serving_)
    PF_LOG_NOTICE("upgrade: new master %d exited (%s)", static_cast<int>(self->pid_), how.c_str());
  else
    PF_LOG_ERROR("upgrade failed: new master %d exited (%s)%s%s; this master keeps serving",
                 static_cast<int>(self->pid_), how.c_str(), self->reported_error_.empty() ? "" : ": ",
                 self->reported_error_.c_str());
  // The owner destroys us inside this call: nothing of ours is used after it.
  Events& events = self->events_;
  events.on_successor_exited(why);
}

}  // namespace preforkd
