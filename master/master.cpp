// The master's event loop. Everything it waits for is a libuv event: signals
// (uv_signal_t), worker exits (uv_process_t, reaped by libuv on SIGCHLD), worker
// messages (IPC pipes) and one timer the supervisor arms for its deadlines. The
// state and the decisions live in Supervisor; this file hands it those events and
// carries out the effects it returns (processes, configs, slot sockets, logs).
#include "master/master.hpp"

#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <vector>

#include "common/log.hpp"
#include "common/uv_handle.hpp"
#include "master/control_commands.hpp"
#include "master/exec_worker.hpp"
#include "master/kernel_features.hpp"
#include "master/log_files.hpp"
#include "master/observability.hpp"
#include "master/pid_file.hpp"
#include "master/predecessor_watch.hpp"
#include "master/worker_affinity.hpp"
#include "master/worker_priority.hpp"
#include "master/slot_sockets.hpp"
#include "master/supervisor.hpp"
#include "master/upgrade.hpp"
#include "master/upgrade_report.hpp"
#include "master/worker_process.hpp"

namespace preforkd {
namespace {


SupervisorOptions supervisor_options(const Config& config) {
  SupervisorOptions options;
  options.graceful_timeout_ms = static_cast<std::uint64_t>(config.graceful_timeout_s * 1000);
  options.worker_timeout_ms = static_cast<std::uint64_t>(config.worker_timeout_s * 1000);
  return options;
}

class Master final : public WorkerProcess::Events,
                     public ExecWorker::Events,
                     public ControlCommands::Actions,
                     public Upgrade::Events {
 public:
  Master(uv_loop_t* loop, const Config& config, const std::string& config_text, pid_t upgrade_from)
      : loop_(loop),
        initial_{config, config_text},
        supervisor_(supervisor_options(config)),
        timer_(this),
        nudge_(this),
        judge_(this),
        upgrade_from_(upgrade_from),
        observability_(loop, supervisor_),
        control_(loop, *this),
        predecessor_watch_(loop, [this] { dispatch(event::PredecessorGone{}); }) {}

  // Why the start failed, as logged (for a USR2 predecessor's report).
  const std::string& start_error() const { return start_error_; }

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
    if ((rc = uv_idle_init(loop_, nudge_.get())) != 0) {
      PF_LOG_ERROR("uv_idle_init: %s", uv_strerror(rc));
      return 1;
    }
    nudge_.mark_initialized();
    if ((rc = uv_check_init(loop_, judge_.get())) != 0) {
      PF_LOG_ERROR("uv_check_init: %s", uv_strerror(rc));
      return 1;
    }
    judge_.mark_initialized();
    for (int signum : {SIGHUP, SIGQUIT, SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU, SIGWINCH})
      if (!watch_signal(signum)) return 1;

    if (const char* inherited = std::getenv(kInheritedSocketsEnv)) {
      std::string error;
      if (!sockets_.adopt(inherited, &error)) {
        start_error_ = "upgrade: " + error;
        PF_LOG_ERROR("%s", start_error_.c_str());
        close_handles();
        return 1;
      }
      PF_LOG_NOTICE("upgrade: adopted %zu listening socket(s) from master %d", sockets_.socket_count(),
                    static_cast<int>(upgrade_from_));
      ::unsetenv(kInheritedSocketsEnv);
    }
    log_kernel_features();
    if (!observability_.start(initial_.config.admin, &start_error_) || !start_control_socket()) {
      close_handles();
      return 1;
    }
    PF_LOG_NOTICE("starting %d worker(s), %zu listener(s), config %s", initial_.config.workers,
                  initial_.config.listeners.size(), initial_.config.source_path.c_str());
    event::Start start;
    // While the master we replace lives it holds every socket it handed us.
    if (upgrade_from_ > 0 && predecessor_watch_.start(upgrade_from_)) {
      start.predecessor = upgrade_from_;
      start.adopted = sockets_.sockets();
    }
    dispatch(std::move(start));
    if (supervisor_.phase() == MasterPhase::idle) {
      close_handles();
      return 1;
    }
    uv_run(loop_, UV_RUN_DEFAULT);
    return exit_code_;
  }

  // --- Effects -------------------------------------------------------------------------

  // Hands `event` to the supervisor and carries out what it asks. Answers (a
  // generation prepared, a worker spawned) are queued and handled after the
  // whole batch that asked, so effects are carried out in the order they were
  // decided.
  void dispatch(Event event) {
    pending_.push_back(std::move(event));
    if (dispatching_) return;
    dispatching_ = true;
    while (!pending_.empty()) {
      Event next = std::move(pending_.front());
      pending_.pop_front();
      for (const Effect& effect : supervisor_.handle(next, now()))
        std::visit([&](const auto& e) { execute(e); }, effect);
    }
    dispatching_ = false;
  }

  void execute(const effect::PrepareGeneration& prepare) {
    std::string error;
    GenerationPtr prepared = prepare_generation(prepare.generation, prepare.reuse, &error);
    if (prepare.generation == 1 && !prepared) start_error_ = error;
    pending_.push_back(event::GenerationPrepared{prepare.generation, std::move(prepared), std::move(error)});
  }

  void execute(const effect::Spawn& spawn) {
    pending_.push_back(event::Spawned{spawn.slot, spawn.generation,
                                      spawn_worker(spawn.slot, spawn.generation, *spawn.config, spawn.spare), random_(),
                                      spawn.spare});
  }

  void execute(const effect::SpawnSpare&) {
    auto worker = std::make_unique<WorkerProcess>(loop_, *this);
    const std::uint64_t t0 = uv_hrtime();
    pid_t pid = worker->spawn_spare();
    if (pid > 0) {
      PF_LOG_DEBUG("spare worker %d spawned in %.2f ms", static_cast<int>(pid), (uv_hrtime() - t0) / 1e6);
      workers_[pid] = std::move(worker);
      set_nice(pid, priorities_.spare);
    }
    pending_.push_back(event::SpareSpawned{pid});
  }

  void execute(const effect::Signal& s) { signal(s.pid, s.signum); }

  void execute(const effect::Retire& retire) {
    if (auto it = workers_.find(retire.pid); it != workers_.end()) it->second->send(ipc::Retire{retire.linger_ms});
  }

  void execute(const effect::ApplyConfig& apply) {
    const Config& config = apply.config->config;
    // A listener the serving generation no longer has stops taking new
    // handshakes now; the old workers accept what completed, freeze and close it.
    sockets_.refuse_removed(config.listeners);
    // The serving generation's workers are the ones new connections go to; a
    // change re-programs every group with the slots it is steered to now.
    sockets_.set_slot_cpus(config.worker_cpu_affinity ? cpus_ : std::vector<int>{});
    prepare_log_files(config);
    if (apply.generation != 1) {
      log::set_level(config.log.level);
      std::string error;
      if (config.log.error_log != current_error_log_ && !log::open(config.log.error_log, &error))
        PF_LOG_ERROR("%s", error.c_str());
      current_error_log_ = config.log.error_log;
    }
  }

  void execute(const effect::ReopenLogs& reopen) {
    if (reopen.config) prepare_log_files(reopen.config->config);
    std::string error;
    if (!log::open(current_error_log_, &error)) PF_LOG_ERROR("reopen log: %s", error.c_str());
    PF_LOG_NOTICE("logs reopened; telling %zu worker(s)", reopen.workers);
  }

  void execute(const effect::RetainSockets& retain) { sockets_.retain_only(retain.sockets); }

  void execute(const effect::Steer& steer) {
    steering_ = steer;
    sockets_.set_shared(steer.shared);
    apply_steering();
  }

  // Steering is a property of each reuseport group: a socket that joins one (a
  // reload's or a new slot's) must not receive before the supervisor says so, so
  // what it last asked for is applied again whenever sockets were created.
  void apply_steering() {
    for (const SteerGroup& group : steering_.groups)
      if (!group.slots.empty())
        sockets_.steer(group.listener, std::vector<int>(group.slots.begin(), group.slots.end()));
  }

  void execute(const effect::ArmTimer& arm) {
    if (!timer_) return;  // closed: the master is on its way out
    if (arm.due_ms == 0) {
      uv_timer_stop(timer_.get());
      return;
    }
    std::uint64_t t = now();
    uv_timer_start(timer_.get(), on_timer, arm.due_ms > t ? arm.due_ms - t : 0, 0);
  }

  void execute(const effect::Notify& notify) {
    control_.notify(notify);
    switch (notify.what) {
      case effect::Notify::What::generation_ready: generation_ready(); break;
      case effect::Notify::What::reload_requested:
        // A queued one is part of the reload systemd has been told about already.
        if (!notify.queued) observability_.reload_requested();
        break;
      case effect::Notify::What::reload_finished:
        // A refused request changed nothing: no news for systemd or the metrics.
        if (!notify.refused) observability_.reload_finished(notify.generation, notify.ok, notify.pending);
        break;
      case effect::Notify::What::upgrade_finished: observability_.upgrade_finished(notify.ok); break;
      case effect::Notify::What::upgrade_requested:
      case effect::Notify::What::upgrade_started:
      case effect::Notify::What::generation_gone:
      case effect::Notify::What::worker_gone: break;
    }
  }

  // USR2, accepted by the supervisor: see master/upgrade.cpp.
  void execute(const effect::StartUpgrade&) {
    Upgrade::Request request{exe_,
                             initial_.config.source_path,
                             initial_.config.pid_file,
                             observability_.notify_socket(),
                             "",
                             {},
                             control_.server().listening() ? &control_.server() : nullptr};
    request.sockets = sockets_.describe_for_upgrade(kFirstInheritedFd, &request.fds);
    std::string error;
    upgrade_ = Upgrade::start(loop_, request, *this, &error);
    pending_.push_back(event::SuccessorStarted{upgrade_ ? upgrade_->pid() : 0, error});
  }

  void execute(const effect::AllStopped&) {
    PF_LOG_NOTICE("all workers stopped; exiting");
    close_handles();
  }

  // Reads and validates the configuration for `generation` (1: the one we
  // started with; `reuse`: that one) and binds every slot's sockets; null (logged,
  // and the message in *error) if it cannot serve.
  GenerationPtr prepare_generation(unsigned generation, GenerationPtr reuse, std::string* error_out) {
    GenerationPtr prepared;
    if (reuse) {
      prepared = std::move(reuse);
    } else if (generation == 1) {
      prepared = std::make_shared<const GenerationConfig>(initial_);
    } else {
      auto read = std::make_shared<GenerationConfig>();
      const std::string& path = initial_.config.source_path;
      try {
        read->text = read_config_text(path);
        read->config = parse_config(read->text, path);
      } catch (const ConfigError& e) {
        *error_out = e.what();
        PF_LOG_ERROR("reload: %s", error_out->c_str());
        return nullptr;
      }
      if (!may_run_as(read->config, error_out)) {
        PF_LOG_ERROR("reload: %s", error_out->c_str());
        return nullptr;
      }
      if (read->config.pid_file != initial_.config.pid_file)
        PF_LOG_WARN("reload: pid_file changes take effect on restart only");
      if (read->config.control_socket != initial_.config.control_socket)
        PF_LOG_WARN("reload: control_socket changes take effect on restart only");
      if (read->config.admin.enabled != initial_.config.admin.enabled ||
          (read->config.admin.enabled && !(read->config.admin.address == initial_.config.admin.address)))
        PF_LOG_WARN("reload: [admin] changes take effect on restart only");
      prepared = read;
    }
    // Bind every slot's sockets now, so that a port in use fails the start or the
    // reload at once, with the error, instead of failing each worker later.
    for (int slot = 0; slot < prepared->config.workers; ++slot) {
      for (const auto& listener : prepared->config.listeners) {
        std::string error;
        if (sockets_.acquire(listener, slot, &error) < 0) {
          *error_out = "listener " + listener.name + ": " + error;
          PF_LOG_ERROR("%s: %s", generation == 1 ? "start" : "reload", error_out->c_str());
          apply_steering();
          return nullptr;
        }
      }
    }
    apply_steering();
    return prepared;
  }

  // spare: an idle process of ours (SpawnSpare) to start, instead of a new one.
  pid_t spawn_worker(int slot, unsigned generation, const GenerationConfig& gen, pid_t spare) {
    std::vector<int> fds;
    for (const auto& listener : gen.config.listeners) {
      std::string error;
      int fd = sockets_.acquire(listener, slot, &error);
      if (fd < 0) {
        PF_LOG_ERROR("slot %d: listener %s: %s", slot, listener.name.c_str(), error.c_str());
        apply_steering();
        return -1;
      }
      fds.push_back(fd);
    }
    apply_steering();
    if (gen.config.exec.enabled()) return spawn_exec_worker(slot, generation, gen.config, fds);
    ipc::Start start{generation, static_cast<std::uint32_t>(slot), gen.config.source_path, gen.text, {}};
    const std::uint64_t t0 = uv_hrtime();
    if (spare > 0) {
      auto it = workers_.find(spare);
      if (it == workers_.end() || it->second->start(std::move(start), fds) != 0) return -1;
      set_nice(spare, priorities_.started_spare);
      pin(spare, slot, gen.config);
      PF_LOG_DEBUG("slot %d gen %u: spare pid %d in %.2f ms", slot, generation, static_cast<int>(spare),
                   (uv_hrtime() - t0) / 1e6);
      return spare;
    }
    auto worker = std::make_unique<WorkerProcess>(loop_, *this);
    pid_t pid = worker->spawn(std::move(start), fds);
    if (pid <= 0) return pid;
    PF_LOG_DEBUG("slot %d gen %u: spawned pid %d in %.2f ms", slot, generation, static_cast<int>(pid),
                 (uv_hrtime() - t0) / 1e6);
    workers_[pid] = std::move(worker);
    set_nice(pid, priorities_.starting);
    pin(pid, slot, gen.config);
    return pid;
  }

  // worker_cpu_affinity: at once, while the process is still being linked (uv_spawn
  // returns once its exec succeeded), so every thread it starts inherits the CPU;
  // a spare, single-threaded while it waits, when it is given its slot. A failure
  // costs locality, not service.
  void pin(pid_t pid, int slot, const Config& config) {
    if (!config.worker_cpu_affinity) return;
    std::string error;
    if (!pin_to_cpu(pid, cpu_for_slot(cpus_, slot), &error)) PF_LOG_WARN("slot %d: %s", slot, error.c_str());
  }

  // [exec]: the operator's program in the slot. No nice boost: a program may fork
  // its own workers, which would keep the raised priority for good.
  pid_t spawn_exec_worker(int slot, unsigned generation, const Config& config, const std::vector<int>& fds) {
    auto worker = std::make_unique<ExecWorker>(loop_, *this);
    pid_t pid = worker->spawn(slot, generation, config, fds, ++exec_serial_, supervisor_.worker_timeout_ms() * 1000);
    if (pid > 0) {
      exec_workers_[pid] = std::move(worker);
      pin(pid, slot, config);
    }
    return pid;
  }

  void signal(pid_t pid, int signum) {
    if (::kill(pid, signum) != 0 && errno != ESRCH)
      PF_LOG_WARN("kill(%d, %s): %s", static_cast<int>(pid), strsignal(signum), std::strerror(errno));
  }

  void generation_ready() {
    // Before the old master hears of it: MAINPID moves first.
    observability_.generation_ready();
    if (upgrade_from_ == 0) return;
    // The old master stops (auto) or parks (manual): the hand-over is its decision.
    upgrade_report::serving(upgrade_from_, initial_.config.upgrade_handover);
    upgrade_from_ = 0;
  }

  // --- ControlCommands::Actions ----------------------------------------------------

  void request_reload() override {
    PF_LOG_INFO("control socket: reload");
    dispatch(event::Signal{SIGHUP});
  }
  void request_upgrade() override {
    PF_LOG_INFO("control socket: upgrade");
    dispatch(event::Signal{SIGUSR2});
  }
  std::string status_json() override { return observability_.status_json(); }

  // --- Upgrade::Events ---------------------------------------------------------------

  void on_successor_serving(UpgradeHandover handover) override { dispatch(event::SuccessorServing{handover}); }
  void on_successor_exited(const std::string& why) override {
    upgrade_.reset();
    dispatch(event::SuccessorExited{why});
    observability_.successor_exited();
  }

  // --- WorkerProcess::Events ---------------------------------------------------------

  void on_worker_message(pid_t pid, const ipc::Message& message) override {
    if (std::holds_alternative<ipc::Ready>(message)) set_nice(pid, priorities_.ready);
    dispatch(event::WorkerMessage{pid, message});
  }

  void on_worker_protocol_error(pid_t pid, const std::string& error) override {
    dispatch(event::ProtocolError{pid, error});
  }

  void on_exec_notice(pid_t pid, const NotifyMessage& message) override { dispatch(event::Notice{pid, message}); }

  void on_worker_exit(pid_t pid, int status, int signal) override {
    workers_.erase(pid);
    dispatch(event::Exited{pid, status, signal, {}});
  }

  void on_exec_exit(pid_t pid, int status, int signal, std::string last_output) override {
    exec_workers_.erase(pid);
    dispatch(event::Exited{pid, status, signal, std::move(last_output)});
  }

 private:
  std::uint64_t now() {
    uv_update_time(loop_);
    return uv_now(loop_);
  }

  const WorkerPriorities priorities_ = worker_priorities();
  // The CPUs the master was given (taskset, systemd's CPUAffinity=), read once:
  // worker_cpu_affinity hands them out to the slots in turn.
  const std::vector<int> cpus_ = allowed_cpus();

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
    if (signum == SIGQUIT || signum == SIGTERM || signum == SIGINT) {
      // While our successor (USR2) runs it is systemd's main pid; while the
      // master we replaced lives, it becomes the main pid again.
      self->observability_.stopping(/*handed_over=*/self->supervisor_.successor() != SuccessorState::none,
                                    self->supervisor_.predecessor());
    }
    self->dispatch(event::Signal{signum});
  }

  // libuv runs due timers before it polls for I/O. After the master itself was
  // stalled (SIGSTOP, a paused VM, swapping) every deadline is due at once while
  // the workers' heartbeats still sit unread in their pipes: judging then would
  // kill every healthy worker for "no heartbeat". So the timer only asks for a
  // judgement; the check handle delivers it after this iteration's poll (made
  // non-blocking by the idle handle) has read what was pending.
  static void on_timer(uv_timer_t* timer) {
    auto* self = owner_of<Master>(timer);
    if (!self->judge_ || uv_is_active(self->judge_.handle())) return;
    // An active idle handle makes the poll non-blocking; it must stay active until
    // the poll has run (libuv runs idle callbacks before it), so on_judge stops it.
    int rc = uv_idle_start(self->nudge_.get(), [](uv_idle_t*) {});
    if (rc == 0) rc = uv_check_start(self->judge_.get(), on_judge);
    if (rc != 0) {
      PF_LOG_ERROR("uv_check_start: %s", uv_strerror(rc));
      self->dispatch(event::Timer{});
    }
  }

  static void on_judge(uv_check_t* check) {
    uv_check_stop(check);
    auto* self = owner_of<Master>(check);
    if (!self) return;
    if (self->nudge_) uv_idle_stop(self->nudge_.get());
    self->dispatch(event::Timer{});
  }

  void close_handles() {
    observability_.close();
    control_.close();
    predecessor_watch_.close();
    timer_.reset();
    nudge_.reset();
    judge_.reset();
    for (auto& s : signals_) s.reset();
    upgrade_.reset();  // closing its handle does not touch the new master itself
  }

  bool start_control_socket() {
    const Config& config = initial_.config;
    if (config.control_socket.empty()) {
      if (default_control_socket(config.pid_file).size() > kMaxControlSocketPath)
        PF_LOG_WARN("control socket off: %s would be longer than a Unix socket path may be; set control_socket",
                    default_control_socket(config.pid_file).c_str());
      else
        PF_LOG_INFO("control socket off (control_socket = \"\")");
      return true;
    }
    std::string error;
    if (!control_.start(config.control_socket, &error)) {
      start_error_ = "control socket: " + error;
      PF_LOG_ERROR("%s", start_error_.c_str());
      return false;
    }
    PF_LOG_NOTICE("control socket %s (preforkd status, -s reload --wait)", config.control_socket.c_str());
    return true;
  }

  uv_loop_t* loop_;
  GenerationConfig initial_;
  std::string current_error_log_ = initial_.config.log.error_log;
  std::string exe_;  // the path we were started from: what USR2 runs (workers run our own image)
  Supervisor supervisor_;
  UvHandle<uv_timer_t> timer_;
  // The supervisor's deadlines are judged after the loop has read what is
  // pending (see on_timer): a poll forced by `nudge_`, then `judge_`.
  UvHandle<uv_idle_t> nudge_;
  UvHandle<uv_check_t> judge_;
  std::vector<UvHandle<uv_signal_t>> signals_;
  SlotSockets sockets_;
  std::map<pid_t, std::unique_ptr<WorkerProcess>> workers_;  // the I/O objects; the state is the supervisor's
  std::map<pid_t, std::unique_ptr<ExecWorker>> exec_workers_;  // likewise, for [exec] programs
  std::uint64_t exec_serial_ = 0;                               // makes each notify socket's name unique
  std::deque<Event> pending_;                                // answers to effects, not yet handed to the supervisor
  bool dispatching_ = false;
  effect::Steer steering_;  // the supervisor's last word on where new connections go
  int exit_code_ = 0;
  std::mt19937_64 random_{std::random_device{}()};
  pid_t upgrade_from_;                // the master we replace, until we serve
  std::unique_ptr<Upgrade> upgrade_;  // the attempt to replace us (USR2), while it runs
  Observability observability_;       // admin endpoint, systemd notify
  ControlCommands control_;           // the control socket
  PredecessorWatch predecessor_watch_;  // the master we replaced, until it is gone
  std::string start_error_;
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
  // Before anything can fail: a USR2 predecessor hears why we could not start.
  upgrade_report::take_from_environment();
  auto fail = [](const std::string& error) {
    PF_LOG_ERROR("%s", error.c_str());
    upgrade_report::failed(error);
    return 1;
  };
  std::string error;
  log::set_level(config.log.level);
  if (!log::open(config.log.error_log, &error)) return fail(error);
  if (!may_run_as(config, &error)) return fail(error);
  if (config.run_as.set() && ::geteuid() != 0 && config.run_as.uid != ::geteuid())
    PF_LOG_WARN("user \"%s\": the master is not root, so workers cannot switch; ignored", config.run_as.user.c_str());
  std::string ignored;
  if (auto pid = read_pid_file(config.pid_file, &ignored); pid && *pid != getpid() && is_running_preforkd(*pid))
    return fail("already running: pid " + std::to_string(*pid) + " in " + config.pid_file);
  if (!write_pid_file(config.pid_file, getpid(), &error)) return fail("pid file: " + error);
  uv_loop_t loop;
  int rc = uv_loop_init(&loop);
  if (rc != 0) {
    remove_pid_file(config.pid_file, getpid());
    return fail(std::string("uv_loop_init: ") + uv_strerror(rc));
  }
  int code;
  {
    Master master(&loop, config, config_text, upgrade_from);
    code = master.run();
    if (code != 0) upgrade_report::failed(master.start_error().empty() ? "the new master could not start (see its log)"
                                                                       : master.start_error());
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
