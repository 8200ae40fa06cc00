// The master's event loop. Everything it waits for is a libuv event: signals
// (uv_signal_t), worker exits (uv_process_t, reaped by libuv on SIGCHLD), worker
// messages (IPC pipes) and one timer the supervisor arms for its deadlines. The
// decisions live in Supervisor; this file connects it to processes, configs and
// the slot sockets.
#include "master/master.hpp"

#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <vector>

#include "common/log.hpp"
#include "common/uv_handle.hpp"
#include "master/kernel_features.hpp"
#include "master/log_files.hpp"
#include "master/observability.hpp"
#include "master/pid_file.hpp"
#include "master/slot_sockets.hpp"
#include "master/supervisor.hpp"
#include "master/upgrade.hpp"
#include "master/worker_process.hpp"

namespace preforkd {
namespace {

// How long a worker whose sockets have no successor keeps accepting after new
// traffic has been steered away: long enough for handshakes already begun on its
// socket to complete and be accepted.
constexpr std::uint32_t kLingerMs = 300;

SupervisorOptions supervisor_options(const Config& config) {
  SupervisorOptions options;
  options.graceful_timeout_ms = static_cast<std::uint64_t>(config.graceful_timeout_s * 1000);
  options.worker_timeout_ms = static_cast<std::uint64_t>(config.worker_timeout_s * 1000);
  return options;
}

// The configuration one generation serves, kept while any of its workers lives.
struct Generation {
  Config config;
  std::string text;
  std::set<ListenerKey> keys() const {
    std::set<ListenerKey> keys;
    for (const auto& l : config.listeners) keys.insert(key_of(l));
    return keys;
  }
};

class Master final : public WorkerControl, public WorkerProcess::Events {
 public:
  Master(uv_loop_t* loop, const Config& config, const std::string& config_text, pid_t upgrade_from)
      : loop_(loop),
        initial_{config, config_text},
        supervisor_(*this, supervisor_options(config)),
        timer_(this),
        upgrade_from_(upgrade_from),
        observability_(loop, supervisor_) {}

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

    if (const char* inherited = std::getenv(kInheritedSocketsEnv)) {
      std::string error;
      if (!sockets_.adopt(inherited, &error)) {
        PF_LOG_ERROR("upgrade: %s", error.c_str());
        close_handles();
        return 1;
      }
      PF_LOG_NOTICE("upgrade: adopted %zu listening socket(s) from master %d", sockets_.socket_count(),
                    static_cast<int>(upgrade_from_));
      ::unsetenv(kInheritedSocketsEnv);
    }
    log_kernel_features();
    if (!observability_.start(initial_.config.admin)) {
      close_handles();
      return 1;
    }
    PF_LOG_NOTICE("starting %d worker(s), %zu listener(s), config %s", initial_.config.workers,
                  initial_.config.listeners.size(), initial_.config.source_path.c_str());
    if (!supervisor_.start(now())) {
      close_handles();
      return 1;
    }
    uv_run(loop_, UV_RUN_DEFAULT);
    return exit_code_;
  }

  // --- WorkerControl ---------------------------------------------------------------

  int prepare_generation(unsigned generation) override {
    auto prepared = std::make_shared<Generation>();
    if (generation == 1) {
      *prepared = initial_;
    } else {
      const std::string& path = initial_.config.source_path;
      try {
        prepared->text = read_config_text(path);
        prepared->config = parse_config(prepared->text, path);
      } catch (const ConfigError& e) {
        PF_LOG_ERROR("reload: %s", e.what());
        return 0;
      }
      std::string why;
      if (!may_run_as(prepared->config, &why)) {
        PF_LOG_ERROR("reload: %s", why.c_str());
        return 0;
      }
      if (prepared->config.pid_file != initial_.config.pid_file)
        PF_LOG_WARN("reload: pid_file changes take effect on restart only");
      if (prepared->config.admin.enabled != initial_.config.admin.enabled ||
          (prepared->config.admin.enabled && !(prepared->config.admin.address == initial_.config.admin.address)))
        PF_LOG_WARN("reload: [admin] changes take effect on restart only");
    }
    // Bind every slot's sockets now, so that a port in use fails the start or the
    // reload at once, with the error, instead of failing each worker later.
    for (int slot = 0; slot < prepared->config.workers; ++slot) {
      for (const auto& listener : prepared->config.listeners) {
        std::string error;
        if (sockets_.acquire(listener, slot, &error) < 0) {
          PF_LOG_ERROR("%s: listener %s: %s", generation == 1 ? "start" : "reload", listener.name.c_str(),
                       error.c_str());
          collect_sockets();
          return 0;
        }
      }
    }
    generations_[generation] = prepared;
    return prepared->config.workers;
  }

  pid_t spawn(int slot, unsigned generation) override {
    auto it = generations_.find(generation);
    if (it == generations_.end()) return -1;
    const Generation& gen = *it->second;
    std::vector<int> fds;
    for (const auto& listener : gen.config.listeners) {
      std::string error;
      int fd = sockets_.acquire(listener, slot, &error);
      if (fd < 0) {
        PF_LOG_ERROR("slot %d: listener %s: %s", slot, listener.name.c_str(), error.c_str());
        collect_sockets();
        return -1;
      }
      fds.push_back(fd);
    }
    auto worker = std::make_unique<WorkerProcess>(loop_, *this);
    ipc::Start start{generation, static_cast<std::uint32_t>(slot), gen.config.source_path, gen.text, {}};
    pid_t pid = worker->spawn(std::move(start), fds);
    if (pid <= 0) {
      collect_sockets();
      return pid;
    }
    workers_[pid] = LiveWorker{std::move(worker), slot, generation, request_limit(gen.config)};
    set_nice(pid, kStartingNice);
    return pid;
  }

  void signal(pid_t pid, int signum) override {
    if (::kill(pid, signum) != 0 && errno != ESRCH)
      PF_LOG_WARN("kill(%d, %s): %s", static_cast<int>(pid), strsignal(signum), std::strerror(errno));
  }

  void retire(pid_t pid, bool successor) override {
    auto it = workers_.find(pid);
    if (it == workers_.end()) return;
    // Linger unless every socket this worker polls is polled by its successor too.
    bool handed_over = successor;
    if (handed_over) {
      auto mine = generations_.at(it->second.generation)->keys();
      auto theirs = generations_.at(serving_)->keys();
      for (const auto& key : mine) handed_over = handed_over && theirs.count(key);
    }
    it->second.process->send(ipc::Retire{handed_over ? 0 : kLingerMs});
  }

  void serving(unsigned generation, int slots) override {
    serving_ = generation;
    serving_slots_ = slots;
    const Config& config = generations_.at(generation)->config;
    prepare_log_files(config);
    if (generation != 1) {
      log::set_level(config.log.level);
      std::string error;
      if (config.log.error_log != current_error_log_ && !log::open(config.log.error_log, &error))
        PF_LOG_ERROR("%s", error.c_str());
      current_error_log_ = config.log.error_log;
    }
    sockets_.steer(config.listeners, slots);
  }

  void generation_gone(unsigned generation) override {
    observability_.generation_gone(generation);
    if (generation != serving_) generations_.erase(generation);
    collect_sockets();
  }

  void worker_gone(pid_t) override { collect_sockets(); }

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
    close_handles();
  }

  void generation_ready(unsigned generation) override {
    observability_.generation_ready(generation);  // before QUIT to the old master: MAINPID moves first
    if (upgrade_from_ == 0) return;
    hand_over_from(upgrade_from_);  // the binary upgrade is complete: the old master may drain and go
    upgrade_from_ = 0;
  }

  void reload_finished(unsigned generation, bool ok) override { observability_.reload_finished(generation, ok); }

  // --- WorkerProcess::Events ---------------------------------------------------------

  void on_worker_message(pid_t pid, const ipc::Message& message) override {
    if (std::holds_alternative<ipc::Ready>(message)) {
      set_nice(pid, 0);
      supervisor_.worker_ready(pid, now());
    } else if (auto* heartbeat = std::get_if<ipc::Heartbeat>(&message)) {
      supervisor_.worker_heartbeat(pid, now());
      record_counters(pid, heartbeat->counters);
      // max_requests is checked here, at heartbeat pace (1 s), not per request: the
      // master already has the counters, and a worker need not know its budget.
      if (auto it = workers_.find(pid); it != workers_.end() && it->second.request_limit != 0 &&
                                        heartbeat->counters.requests >= it->second.request_limit)
        supervisor_.recycle(pid, now());
    } else if (auto* draining = std::get_if<ipc::Draining>(&message)) {
      record_counters(pid, draining->counters);
      PF_LOG_INFO("worker %d draining: %llu connection(s) open", static_cast<int>(pid),
                  static_cast<unsigned long long>(draining->counters.active));
    }
  }

  void on_worker_protocol_error(pid_t pid, const std::string& error) override {
    // A worker that cannot speak the protocol cannot be supervised: replace it.
    PF_LOG_ERROR("worker %d: bad ipc message (%s); killing it", static_cast<int>(pid), error.c_str());
    signal(pid, SIGKILL);
  }

  void on_worker_exit(pid_t pid, int status, int signal) override {
    observability_.worker_exited(pid);
    workers_.erase(pid);
    supervisor_.worker_exited(pid, status, signal, now());
  }

 private:
  struct LiveWorker {
    std::unique_ptr<WorkerProcess> process;
    int slot = 0;
    unsigned generation = 0;
    std::uint64_t request_limit = 0;  // max_requests + jitter; 0 = never recycled
  };

  // gunicorn's semantics: max_requests plus a random 0..jitter, drawn per worker so
  // that workers started together are not all recycled together.
  std::uint64_t request_limit(const Config& config) {
    if (config.max_requests == 0) return 0;
    std::uniform_int_distribution<std::uint64_t> jitter(0, config.max_requests_jitter);
    return config.max_requests + jitter(random_);
  }

  std::uint64_t now() {
    uv_update_time(loop_);
    return uv_now(loop_);
  }

  void record_counters(pid_t pid, const ipc::Counters& counters) {
    if (auto it = workers_.find(pid); it != workers_.end())
      observability_.worker_counters(pid, it->second.generation, counters);
  }

  // Keeps exactly the sockets some live worker or the serving generation needs.
  void collect_sockets() {
    if (supervisor_.phase() == MasterPhase::draining || supervisor_.phase() == MasterPhase::terminating) return;
    std::set<std::pair<ListenerKey, int>> needed;
    auto need = [&](unsigned generation, int slot) {
      auto it = generations_.find(generation);
      if (it == generations_.end()) return;
      for (const auto& l : it->second->config.listeners) needed.insert({key_of(l), socket_slot(l, slot)});
    };
    for (const auto& [pid, worker] : workers_) need(worker.generation, worker.slot);
    for (int slot = 0; slot < serving_slots_; ++slot) need(serving_, slot);
    sockets_.retain_only(needed);
    if (auto it = generations_.find(serving_); it != generations_.end())
      sockets_.steer(it->second->config.listeners, serving_slots_);
  }

  // A starting worker is the critical path of a reload (or of a crash's
  // replacement), and under load it competes with busy old workers for the CPU:
  // it runs at a higher priority until it reports ready (about 5 ms of CPU), then
  // at the normal one. Needs CAP_SYS_NICE (a root master has it); without it this
  // is a no-op.
  static constexpr int kStartingNice = -10;
  static void set_nice(pid_t pid, int nice) {
    if (::setpriority(PRIO_PROCESS, static_cast<id_t>(pid), nice) != 0 && errno != EACCES && errno != EPERM &&
        errno != ESRCH)
      PF_LOG_DEBUG("setpriority(%d, %d): %s", static_cast<int>(pid), nice, std::strerror(errno));
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
    if (self->upgrade_ && !self->upgrade_->allows(signum)) return;
    auto& supervisor = self->supervisor_;
    switch (signum) {
      case SIGHUP:
        self->observability_.reload_requested();
        supervisor.reload(self->now());
        break;
      case SIGQUIT:
      case SIGTERM:
      case SIGINT:
        // Stopping: let go of the slot sockets first, so that each closes (and new
        // connections are refused) as soon as its worker has taken what is queued.
        self->sockets_.retain_only({});
        // A QUIT while our successor (USR2) runs is its hand-over: it is systemd's main pid now.
        self->observability_.stopping(/*handed_over=*/self->upgrade_ != nullptr);
        supervisor.stop(signum == SIGQUIT ? StopMode::graceful : StopMode::fast, self->now());
        break;
      case SIGTTIN: supervisor.scale(+1, self->now()); break;
      case SIGTTOU: supervisor.scale(-1, self->now()); break;
      case SIGUSR1: self->reopen_logs(); break;
      case SIGUSR2: self->start_upgrade(); break;
      case SIGWINCH: supervisor.park(self->now()); break;
      default: break;
    }
  }

  static void on_timer(uv_timer_t* timer) {
    auto* self = owner_of<Master>(timer);
    self->supervisor_.tick(self->now());
  }

  void reopen_logs() {
    if (auto it = generations_.find(serving_); it != generations_.end()) prepare_log_files(it->second->config);
    std::string error;
    if (!log::open(current_error_log_, &error)) PF_LOG_ERROR("reopen log: %s", error.c_str());
    PF_LOG_NOTICE("logs reopened; telling %zu worker(s)", workers_.size());
    for (auto& [pid, worker] : workers_) signal(pid, SIGUSR1);
  }

  void close_handles() {
    observability_.close();
    timer_.reset();
    for (auto& s : signals_) s.reset();
    upgrade_.reset();  // closing its handle does not touch the new master itself
  }

  // USR2: see master/upgrade.cpp. A second one while this runs is refused by allows().
  void start_upgrade() {
    if (supervisor_.phase() != MasterPhase::running) {
      PF_LOG_WARN("upgrade: not now (not running)");
      return;
    }
    Upgrade::Request request{exe_, initial_.config.source_path, initial_.config.pid_file,
                             observability_.notify_socket(), "", {}};
    request.sockets = sockets_.describe_for_upgrade(kFirstInheritedFd, &request.fds);
    upgrade_ = Upgrade::start(loop_, request, [this] { upgrade_.reset(); });
  }

  uv_loop_t* loop_;
  Generation initial_;
  std::string current_error_log_ = initial_.config.log.error_log;
  std::string exe_;  // the path we were started from: what USR2 runs (workers run our own image)
  Supervisor supervisor_;
  UvHandle<uv_timer_t> timer_;
  std::vector<UvHandle<uv_signal_t>> signals_;
  std::map<unsigned, std::shared_ptr<Generation>> generations_;
  unsigned serving_ = 0;
  int serving_slots_ = 0;
  SlotSockets sockets_;
  std::map<pid_t, LiveWorker> workers_;
  int exit_code_ = 0;
  std::mt19937_64 random_{std::random_device{}()};
  pid_t upgrade_from_;                // the master we replace, until we serve
  std::unique_ptr<Upgrade> upgrade_;  // the attempt to replace us (USR2), while it runs
  Observability observability_;       // admin endpoint, systemd notify
};

}  // namespace

bool may_run_as(const Config& config, std::string* why) {
  if (::geteuid() != 0 || config.run_as.set()) return true;
  *why = config.source_path +
         ": running as root without `user`: set user = \"nobody\" (or another account) for the workers, "
         "or user = \"root\" to serve as root deliberately";
  return false;
}

int run_master(const Config& config, const std::string& config_text, pid_t upgrade_from) {
  log::set_identity("master");
  std::signal(SIGPIPE, SIG_IGN);
  std::string error;
  log::set_level(config.log.level);
  if (!log::open(config.log.error_log, &error)) {
    PF_LOG_ERROR("%s", error.c_str());
    return 1;
  }
  if (!may_run_as(config, &error)) {
    PF_LOG_ERROR("%s", error.c_str());
    return 1;
  }
  if (config.run_as.set() && ::geteuid() != 0 && config.run_as.uid != ::geteuid())
    PF_LOG_WARN("user \"%s\": the master is not root, so workers cannot switch; ignored", config.run_as.user.c_str());
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
    Master master(&loop, config, config_text, upgrade_from);
    code = master.run();
    // Let close callbacks of everything the master owned run before it goes.
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  if ((rc = uv_loop_close(&loop)) != 0) PF_LOG_ERROR("uv_loop_close: %s (a handle leaked)", uv_strerror(rc));
  remove_pid_file(config.pid_file, getpid());
  remove_pid_file(config.pid_file + ".oldbin", getpid());
  PF_LOG_NOTICE("exit");
  return code;
}

}  // namespace preforkd
