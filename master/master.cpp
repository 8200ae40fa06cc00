// The master's event loop. Everything it waits for is a libuv event: signals
// (uv_signal_t), worker exits (uv_process_t, reaped by libuv on SIGCHLD), worker
// messages (IPC pipes) and one timer the supervisor arms for its deadlines. The
// decisions live in Supervisor; this file only connects it to the world.
#include "master/master.hpp"

#include <unistd.h>
#include <uv.h>

#include <csignal>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include "common/log.hpp"
#include "common/uv_handle.hpp"
#include "master/pid_file.hpp"
#include "master/supervisor.hpp"
#include "master/worker_process.hpp"

namespace preforkd {
namespace {

SupervisorOptions supervisor_options(const Config& config) {
  SupervisorOptions options;
  options.workers = config.workers;
  options.graceful_timeout_ms = static_cast<std::uint64_t>(config.graceful_timeout_s * 1000);
  return options;
}

class Master final : public WorkerControl, public WorkerProcess::Events {
 public:
  Master(uv_loop_t* loop, const Config& config, const std::string& config_text)
      : loop_(loop),
        config_(config),
        config_text_(config_text),
        supervisor_(*this, supervisor_options(config)),
        timer_(this) {}

  int run() {
    char exe[4096];
    size_t size = sizeof exe;
    int rc = uv_exepath(exe, &size);
    if (rc != 0) {
      PF_LOG_ERROR("uv_exepath: %s", uv_strerror(rc));
      return 1;
    }
    exe_.assign(exe, size);
    if ((rc = uv_timer_init(loop_, timer_.get())) != 0) {
      PF_LOG_ERROR("uv_timer_init: %s", uv_strerror(rc));
      return 1;
    }
    timer_.mark_initialized();
    for (int signum : {SIGHUP, SIGQUIT, SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU, SIGWINCH})
      if (!watch_signal(signum)) return 1;

    PF_LOG_NOTICE("starting %d worker(s), %zu listener(s), config %s", config_.workers,
                  config_.listeners.size(), config_.source_path.c_str());
    supervisor_.start(now());
    uv_run(loop_, UV_RUN_DEFAULT);
    return 0;
  }

  // WorkerControl
  pid_t spawn(int slot, unsigned generation) override {
    auto worker = std::make_unique<WorkerProcess>(loop_, *this);
    ipc::Start start{generation, static_cast<std::uint32_t>(slot), config_.source_path, config_text_};
    pid_t pid = worker->spawn(exe_, start);
    if (pid <= 0) return pid;
    workers_[pid] = std::move(worker);
    return pid;
  }

  void signal(pid_t pid, int signum) override {
    if (::kill(pid, signum) != 0 && errno != ESRCH)
      PF_LOG_WARN("kill(%d, %s): %s", static_cast<int>(pid), strsignal(signum), std::strerror(errno));
  }

  void set_timer(std::uint64_t due_ms) override {
    if (!timer_) return;  // closed: the master is on its way out
    if (due_ms == 0) {
      uv_timer_stop(timer_.get());
      return;
    }
    std::uint64_t t = now();
    uv_timer_start(timer_.get(), on_timer, due_ms > t ? due_ms - t : 0, 0);
  }

  void all_stopped() override {
    PF_LOG_NOTICE("all workers stopped; exiting");
    // Closing our handles lets uv_run return.
    timer_.reset();
    for (auto& s : signals_) s.reset();
  }

  // WorkerProcess::Events
  void on_worker_message(pid_t pid, const ipc::Message& message) override {
    if (std::holds_alternative<ipc::Ready>(message)) {
      supervisor_.worker_ready(pid, now());
    } else if (auto* draining = std::get_if<ipc::Draining>(&message)) {
      PF_LOG_INFO("worker %d draining: %llu connection(s) open", static_cast<int>(pid),
                  static_cast<unsigned long long>(draining->counters.active));
    }
    // Heartbeats carry counters for status and liveness; both arrive with reload support.
  }

  void on_worker_protocol_error(pid_t pid, const std::string& error) override {
    // A worker that cannot speak the protocol cannot be supervised: replace it.
    PF_LOG_ERROR("worker %d: bad ipc message (%s); killing it", static_cast<int>(pid), error.c_str());
    signal(pid, SIGKILL);
  }

  void on_worker_exit(pid_t pid, int status, int signal) override {
    workers_.erase(pid);
    supervisor_.worker_exited(pid, status, signal, now());
  }

 private:
  std::uint64_t now() {
    uv_update_time(loop_);
    return uv_now(loop_);
  }

  bool watch_signal(int signum) {
    auto& handle = signals_.emplace_back(this);
    int rc = uv_signal_init(loop_, handle.get());
    if (rc == 0) {
      handle.mark_initialized();
      rc = uv_signal_start(handle.get(), on_signal, signum);
    }
    if (rc != 0) {
      PF_LOG_ERROR("uv_signal_start(%s): %s", strsignal(signum), uv_strerror(rc));
      return false;
    }
    return true;
  }

  static void on_signal(uv_signal_t* handle, int signum) {
    auto* self = owner_of<Master>(handle);
    PF_LOG_INFO("received %s", strsignal(signum));
    switch (signum) {
      case SIGQUIT: self->supervisor_.stop(StopMode::graceful, self->now()); break;
      case SIGTERM:
      case SIGINT: self->supervisor_.stop(StopMode::fast, self->now()); break;
      case SIGUSR1: self->reopen_logs(); break;
      default:
        // HUP (reload), USR2 (upgrade), TTIN/TTOU (scale), WINCH are caught so that
        // their default actions (terminate, stop) cannot take the master down.
        PF_LOG_WARN("%s: not supported by this version; ignored", strsignal(signum));
        break;
    }
  }

  static void on_timer(uv_timer_t* timer) {
    auto* self = owner_of<Master>(timer);
    self->supervisor_.tick(self->now());
  }

  void reopen_logs() {
    std::string error;
    if (!log::open(config_.log.error_log, &error)) PF_LOG_ERROR("reopen log: %s", error.c_str());
    for (auto& [pid, worker] : workers_) signal(pid, SIGUSR1);
  }

  uv_loop_t* loop_;
  const Config& config_;
  const std::string& config_text_;
  std::string exe_;
  Supervisor supervisor_;
  UvHandle<uv_timer_t> timer_;
  std::vector<UvHandle<uv_signal_t>> signals_;
  std::map<pid_t, std::unique_ptr<WorkerProcess>> workers_;
};

}  // namespace

int run_master(const Config& config, const std::string& config_text) {
  log::set_identity("master");
  std::signal(SIGPIPE, SIG_IGN);
  std::string error;
  log::set_level(config.log.level);
  if (!log::open(config.log.error_log, &error)) {
    PF_LOG_ERROR("%s", error.c_str());
    return 1;
  }
  std::string ignored;
  if (auto pid = read_pid_file(config.pid_file, &ignored); pid && *pid != getpid() && is_running_preforkd(*pid)) {
    PF_LOG_ERROR("already running: pid %d in %s", static_cast<int>(*pid), config.pid_file.c_str());
    return 1;
  }
  if (!write_pid_file(config.pid_file, getpid(), &error)) {
    PF_LOG_ERROR("pid file: %s", error.c_str());
    return 1;
  }
  uv_loop_t loop;
  int rc = uv_loop_init(&loop);
  if (rc != 0) {
    PF_LOG_ERROR("uv_loop_init: %s", uv_strerror(rc));
    remove_pid_file(config.pid_file, getpid());
    return 1;
  }
  int code;
  {
    Master master(&loop, config, config_text);
    code = master.run();
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  if ((rc = uv_loop_close(&loop)) != 0) PF_LOG_ERROR("uv_loop_close: %s (a handle leaked)", uv_strerror(rc));
  remove_pid_file(config.pid_file, getpid());
  PF_LOG_NOTICE("exit");
  return code;
}

}  // namespace preforkd
