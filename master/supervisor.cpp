// Transitions of the supervisor state machine; see supervisor.hpp for the diagram.
#include "master/supervisor.hpp"

#include <csignal>
#include <algorithm>
#include <cstring>
#include <set>

#include "common/fd_passing.hpp"
#include "common/log.hpp"

namespace preforkd {
namespace {

unsigned long long ull(std::uint64_t v) { return static_cast<unsigned long long>(v); }

std::uint64_t to_ms(double seconds) { return static_cast<std::uint64_t>(seconds * 1000); }

std::string describe_exit(int status, int signal) {
  if (signal) return "signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
  return "status " + std::to_string(status);
}

}  // namespace

std::string_view to_string(MasterPhase phase) {
  switch (phase) {
    case MasterPhase::idle: return "idle";
    case MasterPhase::running: return "running";
    case MasterPhase::reloading: return "reloading";
    case MasterPhase::parked: return "parked";
    case MasterPhase::draining: return "draining";
    case MasterPhase::terminating: return "terminating";
    case MasterPhase::stopped: return "stopped";
  }
  return "?";
}

std::string_view to_string(WorkerState state) {
  switch (state) {
    case WorkerState::starting: return "starting";
    case WorkerState::ready: return "ready";
    case WorkerState::retiring: return "retiring";
  }
  return "?";
}

Supervisor::Supervisor(SupervisorOptions options) : options_(options) {}

std::vector<Effect> Supervisor::handle(const Event& event, std::uint64_t now) {
  out_.clear();
  std::visit([&](const auto& e) { on(e, now); }, event);
  if (phase_ != MasterPhase::idle) {
    sync_spares();
    sync_sockets();
    rearm_timer();
  } else if (sockets_dirty_) {
    sync_sockets();  // a failed start: close what it bound
  }
  // A timer that fired is spent: the master must be told the next one even if
  // it is the same time (a deadline that was due but not acted on).
  if (std::holds_alternative<event::Timer>(event) && phase_ != MasterPhase::stopped && phase_ != MasterPhase::idle &&
      (out_.empty() || !std::holds_alternative<effect::ArmTimer>(out_.back())))
    out_.push_back(effect::ArmTimer{timer_due_ms_});
  return std::move(out_);
}

// --- Events --------------------------------------------------------------------------

void Supervisor::on(const event::Start& start, std::uint64_t) {
  if (phase_ != MasterPhase::idle || preparing_ != 0) return;
  if (start.predecessor > 0) {
    predecessor_ = start.predecessor;
    adopted_ = start.adopted;
    predecessor_steers_ = true;
  }
  preparing_ = next_generation_++;
  out_.push_back(effect::PrepareGeneration{preparing_});
}

void Supervisor::on(const event::Signal& signal, std::uint64_t now) {
  switch (signal.signum) {
    case SIGHUP: reload(now); break;
    case SIGQUIT: stop(StopMode::graceful, now); break;
    case SIGTERM:
    case SIGINT: stop(StopMode::fast, now); break;
    case SIGTTIN: scale(+1, now); break;
    case SIGTTOU: scale(-1, now); break;
    case SIGWINCH: park(now); break;
    case SIGUSR1: reopen_logs(); break;
    case SIGUSR2: upgrade(now); break;
    default: break;
  }
}

void Supervisor::on(const event::GenerationPrepared& prepared, std::uint64_t now) {
  if (prepared.generation != preparing_) {
    sockets_dirty_ = true;  // nobody wants it any more (stop, park): its sockets go
    return;
  }
  preparing_ = 0;
  if (!prepared.config && phase_ == MasterPhase::reloading && prepared.generation == starting_) {
    sockets_dirty_ = true;
    starting_ = 0;
    phase_ = slots_.empty() ? MasterPhase::parked : MasterPhase::running;
    ++reloads_failed_;
    PF_LOG_ERROR("reload failed: generation %u keeps serving", serving_);
    reload_finished(false, prepared.error.empty() ? "the configuration could not be prepared" : prepared.error);
    after_reload(now);
    return;
  }
  generation_prepared(prepared.generation, prepared.config, now);
}

void Supervisor::on(const event::Spawned& spawned, std::uint64_t now) {
  if (spawned.spare > 0 && spawned.pid <= 0) {
    // It could not be handed its sockets: it goes, and the spawn failed like any other.
    spares_[spawned.spare] = true;
    out_.push_back(effect::Signal{spawned.spare, SIGKILL});
  }
  auto it = spawning_.find({spawned.generation, spawned.slot});
  if (it == spawning_.end()) return unwanted_spawn(spawned, now);
  SpawnPurpose purpose = it->second;
  spawning_.erase(it);
  if (spawned.pid <= 0) sockets_dirty_ = true;
  const int slot = spawned.slot;
  switch (purpose) {
    case SpawnPurpose::generation:
      if (spawned.generation != starting_) return unwanted_spawn(spawned, now);
      if (spawned.pid <= 0) return abandon("could not start a worker for slot " + std::to_string(slot), now);
      add_worker(spawned, now);
      if (slot + 1 < starting_count_) spawn_for_generation(slot + 1);
      return;
    case SpawnPurpose::fill:
      if (spawned.generation != serving_ || slot >= static_cast<int>(slots_.size()) ||
          (phase_ != MasterPhase::running && phase_ != MasterPhase::reloading))
        return unwanted_spawn(spawned, now);
      if (spawned.pid <= 0) {
        PF_LOG_ERROR("slot %d: could not start a worker", slot);
        ++slots_[slot].failures;
        schedule_restart(slot, now);
        return;
      }
      slots_[slot].pid = spawned.pid;
      add_worker(spawned, now);
      return;
    case SpawnPurpose::drain:
      if (spawned.generation != serving_ || stopping()) return unwanted_spawn(spawned, now);
      if (spawned.pid <= 0) {
        PF_LOG_ERROR("slot %d: could not start a worker to drain it; its queue is dropped", slot);
        return;
      }
      add_worker(spawned, now);
      workers_.at(spawned.pid).drain = true;
      return;
    case SpawnPurpose::successor: {
      if (spawned.generation != serving_ || slot >= static_cast<int>(slots_.size()) || phase_ != MasterPhase::running ||
          slots_[slot].pid == 0)
        return unwanted_spawn(spawned, now);
      SlotInfo& info = slots_[slot];
      if (spawned.pid <= 0) {
        PF_LOG_ERROR("slot %d: could not start a successor for worker %d", slot, static_cast<int>(info.pid));
        return;
      }
      PF_LOG_NOTICE("slot %d: worker %d reached max_requests; starting successor %d", slot, static_cast<int>(info.pid),
                    static_cast<int>(spawned.pid));
      info.successor = spawned.pid;
      add_worker(spawned, now);
      return;
    }
  }
}

void Supervisor::on(const event::WorkerMessage& message, std::uint64_t now) {
  if (std::holds_alternative<ipc::Ready>(message.message)) {
    worker_ready(message.pid, now);
  } else if (auto* heartbeat = std::get_if<ipc::Heartbeat>(&message.message)) {
    worker_heartbeat(message.pid, heartbeat->counters, now);
  } else if (auto* draining = std::get_if<ipc::Draining>(&message.message)) {
    auto it = workers_.find(message.pid);
    if (it == workers_.end()) return;
    ledger_.update(message.pid, it->second.generation, draining->counters);
    PF_LOG_INFO("worker %d draining: %llu connection(s) open", static_cast<int>(message.pid),
                ull(draining->counters.active));
  }
}

// Order within one datagram: what it says about itself first, READY=1 last but
// one (it may promote a generation), STOPPING=1 last.
void Supervisor::on(const event::Notice& notice, std::uint64_t now) {
  auto it = workers_.find(notice.pid);
  if (it == workers_.end() || !it->second.exec) return;
  WorkerInfo& worker = it->second;
  const NotifyMessage& message = notice.message;
  if (message.status) worker.status = *message.status;
  if (message.extend_timeout_usec) extend_deadline(worker, *message.extend_timeout_usec, now);
  if (message.watchdog) {
    if (!worker.heartbeats)
      PF_LOG_INFO("slot %d: worker %d sends WATCHDOG=1: worker_timeout applies to it from now on", worker.slot,
                  static_cast<int>(worker.pid));
    worker.heartbeats = true;
    worker_alive(worker, now);
  }
  if (message.ready) worker_ready(notice.pid, now);
  if (message.stopping && !worker.announced_stopping) program_stopping(worker);
}

void Supervisor::on(const event::ProtocolError& error, std::uint64_t) {
  // A worker that cannot speak the protocol cannot be supervised: replace it.
  PF_LOG_ERROR("worker %d: bad ipc message (%s); killing it", static_cast<int>(error.pid), error.error.c_str());
  out_.push_back(effect::Signal{error.pid, SIGKILL});
}

void Supervisor::on(const event::Exited& exited, std::uint64_t now) {
  if (spare_exited(exited.pid, exited.status, exited.signal)) return;
  worker_exited(exited, now);
}

void Supervisor::on(const event::SpareSpawned& spawned, std::uint64_t) {
  if (spares_spawning_ > 0) --spares_spawning_;
  if (spawned.pid <= 0) {
    PF_LOG_WARN("could not start a spare worker; none until the next reload");
    spares_failing_ = true;
    check_stopped();
    return;
  }
  spares_[spawned.pid] = false;  // sync_spares() kills it if it is no longer wanted
}

// --- Start and reload ----------------------------------------------------------------

void Supervisor::generation_prepared(unsigned generation, GenerationPtr config, std::uint64_t) {
  if (phase_ == MasterPhase::idle) {  // the first start
    if (!config) {
      sockets_dirty_ = true;
      return;
    }
    generations_[generation] = config;
    phase_ = MasterPhase::running;
    serving_ = generation;
    slots_.assign(static_cast<std::size_t>(config->config.workers), SlotInfo{});
    serve();
    for (int slot = 0; slot < static_cast<int>(slots_.size()); ++slot) fill_slot(slot);
    return;
  }
  if (phase_ != MasterPhase::reloading || generation != starting_ || !config) return;
  generations_[generation] = config;
  starting_count_ = config->config.workers;
  start_due_ms_ = starting_since_ms_ + start_timeout_ms(config->config);
  PF_LOG_NOTICE("reload: starting generation %u with %d worker(s)", generation, starting_count_);
  spawn_for_generation(0);
}

void Supervisor::reload(std::uint64_t now) {
  if (phase_ == MasterPhase::reloading && successor_ == SuccessorState::none) {
    // Coalesced: every request made meanwhile is answered by the one reload that
    // reads the configuration after all of them.
    if (!reload_pending_) pending_reload_ = ++reload_attempts_;
    PF_LOG_NOTICE("reload requested while generation %u is starting: it will follow", starting_);
    reload_pending_ = true;
    out_.push_back(effect::Notify{.what = effect::Notify::What::reload_requested, .attempt = pending_reload_,
                                  .queued = true});
    return;
  }
  const unsigned attempt = ++reload_attempts_;
  out_.push_back(effect::Notify{.what = effect::Notify::What::reload_requested, .attempt = attempt});
  std::string refused;
  if (phase_ != MasterPhase::running && phase_ != MasterPhase::parked && phase_ != MasterPhase::reloading) {
    refused = "the master is " + std::string(to_string(phase_));
  } else if (successor_ == SuccessorState::launching || successor_ == SuccessorState::starting) {
    refused = "new master " + std::to_string(successor_pid_) +
              " is starting and has read the config itself; reload it once it serves (the pid file names it)";
  } else if (successor_ == SuccessorState::serving && phase_ == MasterPhase::parked) {
    PF_LOG_NOTICE("rollback: new master %d serves; starting workers of this master's own configuration (not re-read); "
                  "QUIT %d once they serve",
                  static_cast<int>(successor_pid_), static_cast<int>(successor_pid_));
    current_reload_ = attempt;
    begin_generation(now, /*reuse=*/true);
    return;
  } else if (successor_ == SuccessorState::serving) {
    refused = "new master " + std::to_string(successor_pid_) +
              " serves alongside this one: QUIT it to complete the rollback, or QUIT this master";
  }
  if (!refused.empty()) {
    PF_LOG_WARN("reload: refused: %s", refused.c_str());
    out_.push_back(effect::Notify{.what = effect::Notify::What::reload_finished, .generation = serving_,
                                  .attempt = attempt, .reason = refused, .refused = true});
    return;
  }
  current_reload_ = attempt;
  begin_generation(now);
}

void Supervisor::resume(std::uint64_t now) {
  current_reload_ = ++reload_attempts_;
  out_.push_back(effect::Notify{.what = effect::Notify::What::reload_requested, .attempt = current_reload_});
  begin_generation(now, /*reuse=*/true);
}

void Supervisor::begin_generation(std::uint64_t now, bool reuse) {
  phase_ = MasterPhase::reloading;
  starting_ = preparing_ = next_generation_++;
  starting_count_ = 0;  // known once prepared
  start_due_ms_ = now + options_.start_timeout_ms;
  starting_since_ms_ = now;
  auto serving = generations_.find(serving_);
  out_.push_back(effect::PrepareGeneration{starting_, reuse && serving != generations_.end() ? serving->second : nullptr});
}

// --- Binary upgrade ----------------------------------------------------------------

void Supervisor::upgrade(std::uint64_t) {
  const unsigned attempt = ++upgrade_attempts_;
  out_.push_back(effect::Notify{.what = effect::Notify::What::upgrade_requested, .attempt = attempt});
  std::string refused;
  if (successor_ == SuccessorState::launching || successor_ == SuccessorState::starting)
    refused = "new master " + std::to_string(successor_pid_) + " is still starting (QUIT it to abort that upgrade)";
  else if (successor_ == SuccessorState::serving)
    refused = "new master " + std::to_string(successor_pid_) +
              " serves with this master as its fallback: QUIT this master to complete that upgrade first";
  else if (predecessor_ != 0)
    refused = "the master this one replaced (" + std::to_string(predecessor_) +
              ") still runs: complete that upgrade first (QUIT it)";
  else if (phase_ != MasterPhase::running)
    refused = "not now (" + std::string(to_string(phase_)) + ")";
  if (!refused.empty()) {
    PF_LOG_WARN("upgrade: refused: %s", refused.c_str());
    out_.push_back(effect::Notify{.what = effect::Notify::What::upgrade_finished, .attempt = attempt,
                                  .reason = refused, .refused = true});
    return;
  }
  current_upgrade_ = attempt;
  successor_ = SuccessorState::launching;
  out_.push_back(effect::StartUpgrade{});
}

void Supervisor::on(const event::SuccessorStarted& started, std::uint64_t) {
  if (successor_ != SuccessorState::launching) return;
  if (started.pid <= 0) {
    successor_ = SuccessorState::none;
    finish_upgrade(current_upgrade_, false, started.error, 0);
    current_upgrade_ = 0;
    return;
  }
  successor_ = SuccessorState::starting;
  successor_pid_ = started.pid;
  // From now on the successor holds copies of these: they stay in their groups
  // whatever we close, so we close none of them and our picture of each group's
  // order stays true.
  held_ = needed_sockets();
  out_.push_back(effect::Notify{.what = effect::Notify::What::upgrade_started, .pid = started.pid,
                                .attempt = current_upgrade_});
}

void Supervisor::on(const event::SuccessorServing& serving, std::uint64_t now) {
  if (successor_ != SuccessorState::starting) return;
  successor_ = SuccessorState::serving;
  out_.push_back(effect::Notify{.what = effect::Notify::What::upgrade_finished, .ok = true, .pid = successor_pid_,
                                .attempt = current_upgrade_, .handover = serving.handover});
  current_upgrade_ = 0;
  if (stopping()) return;
  const int pid = static_cast<int>(successor_pid_);
  if (serving.handover == UpgradeHandover::automatic) {
    PF_LOG_NOTICE("upgrade: new master %d serves; stopping gracefully", pid);
    stop(StopMode::graceful, now);
    return;
  }
  PF_LOG_NOTICE("upgrade: new master %d serves (upgrade_handover = \"manual\"): this master parks its workers and keeps "
                "its sockets; QUIT it to complete the upgrade, or HUP it and then QUIT %d to roll back",
                pid, pid);
  park(now);
}

void Supervisor::on(const event::SuccessorExited& exited, std::uint64_t now) {
  if (successor_ == SuccessorState::none) return;
  const SuccessorState was = successor_;
  const int pid = static_cast<int>(successor_pid_);
  successor_ = SuccessorState::none;
  successor_pid_ = 0;
  held_.clear();  // ours alone again: what nobody needs closes now
  if (was != SuccessorState::serving) {
    finish_upgrade(current_upgrade_, false,
                   exited.error.empty() ? "new master " + std::to_string(pid) + " exited before it served" : exited.error,
                   pid);
    current_upgrade_ = 0;
  }
  if (stopping()) return;
  if (phase_ == MasterPhase::parked) {
    // Nothing serves: the connections queue on our sockets until our workers are back.
    PF_LOG_NOTICE("upgrade rolled back: new master %d exited; starting workers of this master's configuration again",
                  pid);
    resume(now);
  } else if (was == SuccessorState::serving) {
    PF_LOG_NOTICE("rollback complete: new master %d exited; this master serves alone", pid);
  }
}

void Supervisor::on(const event::PredecessorGone&, std::uint64_t) {
  if (predecessor_ == 0) return;
  PF_LOG_NOTICE("upgrade complete: the old master %d is gone; its sockets are this master's alone",
                static_cast<int>(predecessor_));
  predecessor_ = 0;
  adopted_.clear();
  predecessor_steers_ = false;
}

std::vector<SteerGroup> Supervisor::predecessor_steering() const {
  std::vector<SteerGroup> groups;
  auto it = generations_.find(serving_);
  if (it == generations_.end()) return groups;
  for (const auto& listener : it->second->config.listeners) {
    SteerGroup group{listener, {}};
    for (const auto& [key, slot] : adopted_)
      if (key == key_of(listener)) group.slots.insert(slot);
    if (!group.slots.empty()) groups.push_back(std::move(group));
  }
  return groups;
}

// One slot after the other: a slot that cannot start abandons the generation
// before the next is forked.
void Supervisor::spawn_for_generation(int slot) { spawn(slot, starting_, SpawnPurpose::generation); }

void Supervisor::spawn(int slot, unsigned generation, SpawnPurpose purpose) {
  spawning_[{generation, slot}] = purpose;
  out_.push_back(effect::Spawn{slot, generation, generations_.at(generation), take_spare(generation)});
}

// --- Spares ------------------------------------------------------------------------

pid_t Supervisor::take_spare(unsigned generation) {
  auto config = generations_.find(generation);
  // More sockets than one SCM_RIGHTS message carries: that generation starts fresh.
  // A spare is preforkd's own worker: an [exec] generation runs the operator's
  // program, which must be exec'd with its sockets already in place.
  if (config == generations_.end() || config->second->config.listeners.size() > kMaxPassedFds ||
      config->second->config.exec.enabled())
    return 0;
  for (auto it = spares_.begin(); it != spares_.end(); ++it) {
    if (it->second) continue;
    pid_t pid = it->first;
    spares_.erase(it);
    return pid;
  }
  return 0;
}

std::size_t Supervisor::spares_wanted() const {
  // Only while serving normally: during a reload the pool is being used (and new
  // spares would compete with the generation starting); parked, stopping or with
  // a USR2 successor (which reloads in our place) nothing would take them.
  if (phase_ != MasterPhase::running || successor_ != SuccessorState::none || spares_failing_) return 0;
  auto it = generations_.find(serving_);
  if (it == generations_.end() || !it->second->config.prespawn || it->second->config.exec.enabled()) return 0;
  return slots_.size();
}

void Supervisor::sync_spares() {
  if (phase_ == MasterPhase::reloading && successor_ == SuccessorState::none) return;  // keep the pool as it is
  const std::size_t wanted = spares_wanted();
  std::size_t have = static_cast<std::size_t>(spares_spawning_);
  for (const auto& [pid, killed] : spares_) have += !killed;
  for (; have < wanted; ++have) {
    ++spares_spawning_;
    out_.push_back(effect::SpawnSpare{});
  }
  for (auto it = spares_.rbegin(); it != spares_.rend() && have > wanted; ++it) {
    if (it->second) continue;
    it->second = true;
    --have;
    PF_LOG_INFO("spare worker %d: no longer needed; killing it", static_cast<int>(it->first));
    out_.push_back(effect::Signal{it->first, SIGKILL});
  }
}

bool Supervisor::spare_exited(pid_t pid, int status, int signal) {
  auto it = spares_.find(pid);
  if (it == spares_.end()) return false;
  const bool killed = it->second;
  spares_.erase(it);
  if (!killed && !stopping()) {
    PF_LOG_WARN("spare worker %d exited before it was used (%s); no spares until the next reload",
                static_cast<int>(pid), describe_exit(status, signal).c_str());
    spares_failing_ = true;
  } else {
    PF_LOG_DEBUG("spare worker %d exited (%s)", static_cast<int>(pid), describe_exit(status, signal).c_str());
  }
  check_stopped();
  return true;
}

void Supervisor::add_worker(const event::Spawned& spawned, std::uint64_t now) {
  WorkerInfo worker{spawned.pid, spawned.slot, spawned.generation, WorkerState::starting, now, now, 0, false, 0};
  worker.start_due_ms = now + options_.start_timeout_ms;
  if (const ExecConfig* exec = exec_of(spawned.generation)) {
    worker.exec = true;
    worker.heartbeats = false;  // until its first WATCHDOG=1
    worker.start_due_ms = now + to_ms(exec->start_timeout_s);
    if (!exec->ready_on_notify()) worker.ready_due_ms = now + to_ms(exec->ready_after_s);
  }
  // gunicorn's semantics: max_requests plus a random 0..jitter, drawn per
  // worker so that workers started together are not all recycled together.
  // (An unwanted spawn's generation may be gone already: it is killed anyway.)
  // A program's requests are not counted, so it is never recycled.
  if (auto it = generations_.find(spawned.generation);
      it != generations_.end() && it->second->config.max_requests && !worker.exec)
    worker.request_limit =
        it->second->config.max_requests + spawned.draw % (it->second->config.max_requests_jitter + 1);
  workers_[spawned.pid] = worker;
}

// A worker started for a purpose that went away meanwhile (a stop, an abandoned
// reload, a slot scaled away): it must not serve, and it must be reaped.
void Supervisor::unwanted_spawn(const event::Spawned& spawned, std::uint64_t now) {
  if (spawned.pid <= 0) {
    sockets_dirty_ = true;
    return;
  }
  add_worker(spawned, now);
  kill_worker(workers_.at(spawned.pid), "no longer needed");
}

void Supervisor::promote(std::uint64_t now) {
  unsigned old = serving_;
  const int old_socket_slots = socket_slots();
  serving_ = starting_;
  starting_ = 0;
  std::vector<SlotInfo> previous = std::move(slots_);
  slots_.assign(static_cast<std::size_t>(starting_count_), SlotInfo{});
  for (std::size_t slot = 0; slot < slots_.size() && slot < previous.size(); ++slot)
    slots_[slot].restarts = previous[slot].restarts;
  for (auto& [pid, worker] : workers_)
    if (worker.generation == serving_) slots_[worker.slot].pid = pid;
  ++reloads_ok_;
  phase_ = MasterPhase::running;
  spares_failing_ = false;
  // The time from the reload request to serving is the figure operators (and
  // bench/run) want for "how long does a reload take".
  PF_LOG_NOTICE(
      "generation %u: all %d workers ready; retiring generation %u "
      "(serving %llu ms after the reload began)",
      serving_, starting_count_, old, ull(now - starting_since_ms_));
  predecessor_steers_ = false;  // a new master's generation serves: it steers from now on
  // Steering first: a slot that will have no successor must stop receiving before it retires.
  serve();
  for (auto& [pid, worker] : workers_)
    if (worker.generation != serving_ && worker.state != WorkerState::retiring)
      retire_worker(worker, worker.slot < starting_count_, now);
  // Slots that go away with no worker of their own (parked, backing off) still hold
  // what was queued on their sockets.
  for (int slot = starting_count_; slot < old_socket_slots; ++slot)
    if (slot >= static_cast<int>(previous.size()) || previous[slot].pid == 0) drain_slot(slot);
  parked_slots_ = 0;
  check_generation_gone(old);
  notify(effect::Notify::What::generation_ready, serving_);
  reload_finished(true);
  after_reload(now);
}

void Supervisor::abandon(const std::string& why, std::uint64_t now) {
  unsigned generation = starting_;
  ++reloads_failed_;
  std::string message = "reload to generation " + std::to_string(generation) + " failed: " + why + "; generation " +
                        std::to_string(serving_) + " keeps serving";
  PF_LOG_ERROR("%s", message.c_str());
  for (auto& [pid, worker] : workers_)
    if (worker.generation == generation && !worker.killed) kill_worker(worker, "its generation was abandoned");
  starting_ = 0;
  if (preparing_ == generation) preparing_ = 0;
  // A parked master (no slots) that failed to come back stays parked.
  phase_ = slots_.empty() ? MasterPhase::parked : MasterPhase::running;
  check_generation_gone(generation);
  reload_finished(false, message);
  after_reload(now);
}

void Supervisor::reload_finished(bool ok, const std::string& reason) {
  finish_reload(current_reload_, ok, reason, reload_pending_);
  current_reload_ = 0;
}

void Supervisor::finish_reload(unsigned attempt, bool ok, const std::string& reason, bool pending) {
  out_.push_back(effect::Notify{.what = effect::Notify::What::reload_finished, .generation = serving_, .ok = ok,
                                .pending = pending, .attempt = attempt, .reason = reason});
}

void Supervisor::finish_upgrade(unsigned attempt, bool ok, const std::string& reason, pid_t successor) {
  out_.push_back(effect::Notify{.what = effect::Notify::What::upgrade_finished, .ok = ok, .pid = successor,
                                .attempt = attempt, .reason = reason});
}

void Supervisor::drop_pending_reload(const std::string& why) {
  if (!reload_pending_) return;
  reload_pending_ = false;
  finish_reload(pending_reload_, false, why, false);
  pending_reload_ = 0;
}

void Supervisor::after_reload(std::uint64_t now) {
  if (reload_pending_) {
    reload_pending_ = false;
    current_reload_ = pending_reload_;
    pending_reload_ = 0;
    // If it cannot start, its failure comes back here and pending scaling
    // applies then.
    begin_generation(now);
    return;
  }
  while (scale_pending_ != 0 && phase_ == MasterPhase::running) {
    int step = scale_pending_ > 0 ? 1 : -1;
    scale_pending_ -= step;
    scale(step, now);
  }
}

// --- Scaling -------------------------------------------------------------------

void Supervisor::scale(int delta, std::uint64_t now) {
  if (successor_ != SuccessorState::none) {
    // A new slot's socket would join groups the successor knows nothing of, and
    // a closed one would leave our picture of the groups' order behind.
    PF_LOG_WARN("scaling: refused while new master %d shares this master's sockets (binary upgrade)",
                static_cast<int>(successor_pid_));
    return;
  }
  if (phase_ == MasterPhase::reloading) {
    scale_pending_ += delta;
    return;
  }
  if (phase_ != MasterPhase::running || delta == 0) return;
  if (delta > 0) {
    slots_.emplace_back();
    int slot = static_cast<int>(slots_.size()) - 1;
    PF_LOG_NOTICE("scaling up: slot %d added to generation %u", slot, serving_);
    serve();
    fill_slot(slot);
  } else {
    if (slots_.size() <= 1) {
      PF_LOG_WARN("scaling down: already at one worker");
      return;
    }
    SlotInfo last = slots_.back();
    slots_.pop_back();
    PF_LOG_NOTICE("scaling down: slot %zu leaves generation %u", slots_.size(), serving_);
    serve();
    for (pid_t pid : {last.pid, last.successor})
      if (auto it = workers_.find(pid); pid != 0 && it != workers_.end())
        retire_worker(it->second, /*successor=*/false, now);
    if (last.pid == 0 && !spawning(serving_, static_cast<int>(slots_.size())))
      drain_slot(static_cast<int>(slots_.size()));
  }
}

// --- Workers -------------------------------------------------------------------

void Supervisor::fill_slot(int slot) {
  slots_[slot].pid = 0;
  spawn(slot, serving_, SpawnPurpose::fill);
}

void Supervisor::drain_slot(int slot) {
  PF_LOG_NOTICE("slot %d leaves generation %u with no worker: starting one to drain its queue", slot, serving_);
  spawn(slot, serving_, SpawnPurpose::drain);
}

void Supervisor::schedule_restart(int slot, std::uint64_t now) {
  SlotInfo& info = slots_[slot];
  info.pid = 0;
  std::uint64_t delay = restart_delay_ms(options_.backoff, info.failures);
  if (info.failures >= options_.backoff.crash_loop_after) {
    if (info.failures == options_.backoff.crash_loop_after) ++crash_loops_;
    PF_LOG_ERROR("slot %d: crash loop: %u consecutive failures; next start in %llu ms", slot, info.failures,
                 ull(delay));
  }
  if (delay == 0) {
    ++info.restarts;
    fill_slot(slot);
    return;
  }
  info.restart_due_ms = now + delay;
}

void Supervisor::retire_worker(WorkerInfo& worker, bool successor, std::uint64_t now) {
  worker.state = WorkerState::retiring;
  const std::uint32_t linger = linger_for(worker, successor);
  worker.kill_due_ms = now + options_.graceful_timeout_ms;
  if (!worker.exec) {
    out_.push_back(effect::Retire{worker.pid, linger});
    return;
  }
  // A program has no retire message: it keeps serving through the linger (new
  // connections are steered elsewhere already), then gets its stop signal, and
  // graceful_timeout counts from there.
  worker.stop_due_ms = now + linger;
  worker.kill_due_ms += linger;
  if (linger == 0) send_stop_signal(worker);
}

void Supervisor::send_stop_signal(WorkerInfo& worker) {
  const ExecConfig* exec = exec_of(worker.generation);
  const int signum = exec != nullptr ? exec->stop_signal : SIGTERM;
  worker.stop_sent = true;
  PF_LOG_INFO("slot %d: asking worker %d of generation %u to stop (SIG%s)", worker.slot,
              static_cast<int>(worker.pid), worker.generation, std::string(exec_signal_name(signum)).c_str());
  out_.push_back(effect::Signal{worker.pid, signum});
}

// Linger unless every socket this worker polls is polled by its successor too.
std::uint32_t Supervisor::linger_for(const WorkerInfo& worker, bool successor) const {
  if (!successor) return options_.linger_ms;
  auto mine = generations_.find(worker.generation);
  auto theirs = generations_.find(serving_);
  if (mine == generations_.end() || theirs == generations_.end()) return options_.linger_ms;
  std::set<ListenerKey> polled;
  for (const auto& l : theirs->second->config.listeners) polled.insert(key_of(l));
  for (const auto& l : mine->second->config.listeners)
    if (!polled.count(key_of(l))) return options_.linger_ms;
  return 0;
}

void Supervisor::kill_worker(WorkerInfo& worker, const char* why) {
  PF_LOG_WARN("slot %d: killing worker %d of generation %u: %s", worker.slot, static_cast<int>(worker.pid),
              worker.generation, why);
  worker.killed = true;
  out_.push_back(effect::Signal{worker.pid, SIGKILL});
}

void Supervisor::worker_ready(pid_t pid, std::uint64_t now) {
  auto it = workers_.find(pid);
  if (it == workers_.end() || it->second.state != WorkerState::starting) return;
  WorkerInfo& worker = it->second;
  worker.state = WorkerState::ready;
  worker.last_seen_ms = now;
  PF_LOG_INFO("slot %d: worker %d of generation %u ready", worker.slot, static_cast<int>(pid), worker.generation);
  worker.was_ready = true;
  if (worker.reopen_due) {
    worker.reopen_due = false;
    if (int signum = reopen_signal_of(worker)) out_.push_back(effect::Signal{pid, signum});
  }
  if (worker.drain) {
    // Lingers: accepts what is queued (and what is still arriving) on the slot's
    // sockets, which get no new connections, then exits and they close.
    PF_LOG_NOTICE("slot %d: worker %d drains the slot's queue and retires", worker.slot, static_cast<int>(pid));
    retire_worker(worker, /*successor=*/false, now);
    return;
  }
  if (worker.generation == serving_ && worker.slot < static_cast<int>(slots_.size()) &&
      slots_[worker.slot].steered_away &&
      (slots_[worker.slot].pid == pid || slots_[worker.slot].successor == pid)) {
    PF_LOG_NOTICE("slot %d: worker %d ready; steering new connections back to it", worker.slot,
                  static_cast<int>(pid));
    slots_[worker.slot].steered_away = false;
  }
  if (worker.generation == starting_) {
    int ready = 0;
    for (const auto& [p, w] : workers_) ready += (w.generation == starting_ && w.state == WorkerState::ready);
    if (ready == starting_count_) promote(now);
  } else if (worker.generation == serving_ && worker.slot < static_cast<int>(slots_.size()) &&
             slots_[worker.slot].successor == pid) {
    take_over(worker, now);
  } else if (worker.generation == serving_) {
    bool all_ready = true;
    for (const SlotInfo& slot : slots_) {
      auto w = workers_.find(slot.pid);
      all_ready = all_ready && slot.pid != 0 && w != workers_.end() && w->second.state == WorkerState::ready;
    }
    if (all_ready) {
      PF_LOG_NOTICE("generation %u: all %zu workers ready", serving_, slots_.size());
      // A new master takes the steering over before it reports serving, so that
      // nothing new reaches a socket the old master's retiring workers let go of.
      predecessor_steers_ = false;
      sync_sockets();
      notify(effect::Notify::What::generation_ready, serving_);
    }
  }
}

void Supervisor::worker_heartbeat(pid_t pid, const ipc::Counters& counters, std::uint64_t now) {
  auto it = workers_.find(pid);
  if (it == workers_.end()) return;
  ledger_.update(pid, it->second.generation, counters);
  worker_alive(it->second, now);
  // max_requests is checked here, at heartbeat pace (1 s), not per request: the
  // master already has the counters, and a worker need not know its budget.
  if (it->second.request_limit != 0 && counters.requests >= it->second.request_limit) recycle(pid, now);
}

void Supervisor::worker_alive(WorkerInfo& worker, std::uint64_t now) {
  worker.last_seen_ms = now;
  // One that said it is stopping stays steered away: it is on its way out.
  if (fills_its_slot(worker) && slots_[worker.slot].steered_away && !worker.announced_stopping) {
    PF_LOG_NOTICE("slot %d: worker %d answers again; steering new connections back to it", worker.slot,
                  static_cast<int>(worker.pid));
    slots_[worker.slot].steered_away = false;
  }
}

void Supervisor::extend_deadline(WorkerInfo& worker, std::uint64_t usec, std::uint64_t now) {
  // systemd's meaning: the deadline of the current state becomes at least now + usec.
  const std::uint64_t until = now + (usec + 999) / 1000;
  if (worker.state == WorkerState::starting) {
    worker.start_due_ms = std::max(worker.start_due_ms, until);
    if (worker.generation == starting_) start_due_ms_ = std::max(start_due_ms_, until);
  } else if (worker.state == WorkerState::retiring && !stopping()) {
    worker.kill_due_ms = std::max(worker.kill_due_ms, until);
  } else {
    return;
  }
  PF_LOG_INFO("slot %d: worker %d extends its %s deadline by %llu ms", worker.slot, static_cast<int>(worker.pid),
              worker.state == WorkerState::starting ? "start" : "stop", ull((usec + 999) / 1000));
}

void Supervisor::program_stopping(WorkerInfo& worker) {
  worker.announced_stopping = true;
  if (worker.state == WorkerState::retiring || stopping()) {
    PF_LOG_INFO("slot %d: worker %d is stopping", worker.slot, static_cast<int>(worker.pid));
    return;
  }
  // Unasked: it is going to exit. Its socket's queue waits for the replacement;
  // nothing new should join it meanwhile.
  PF_LOG_NOTICE("slot %d: worker %d announced STOPPING=1 unasked; new connections go to the other slots until it "
                "is replaced", worker.slot, static_cast<int>(worker.pid));
  if (fills_its_slot(worker)) slots_[worker.slot].steered_away = true;
}

void Supervisor::ready_by_age(std::uint64_t now) {
  std::vector<pid_t> due;
  for (const auto& [pid, worker] : workers_)
    if (worker.state == WorkerState::starting && !worker.killed && worker.ready_due_ms != 0 &&
        now >= worker.ready_due_ms)
      due.push_back(pid);
  for (pid_t pid : due) {
    auto it = workers_.find(pid);
    if (it == workers_.end() || it->second.state != WorkerState::starting) continue;
    PF_LOG_INFO("slot %d: worker %d alive for %llu ms: ready", it->second.slot, static_cast<int>(pid),
                ull(now - it->second.started_ms));
    worker_ready(pid, now);
  }
}

const ExecConfig* Supervisor::exec_of(unsigned generation) const {
  auto it = generations_.find(generation);
  return it != generations_.end() && it->second->config.exec.enabled() ? &it->second->config.exec : nullptr;
}

std::uint64_t Supervisor::start_timeout_ms(const Config& config) const {
  return config.exec.enabled() ? to_ms(config.exec.start_timeout_s) : options_.start_timeout_ms;
}

int Supervisor::reopen_signal_of(const WorkerInfo& worker) const {
  if (!worker.exec) return SIGUSR1;
  const ExecConfig* exec = exec_of(worker.generation);
  return exec != nullptr ? exec->reopen_signal : 0;
}

std::uint64_t Supervisor::unresponsive_after_ms(const WorkerInfo& worker) const {
  // A program pings at an interval of its choosing within WATCHDOG_USEC
  // (= worker_timeout; sd_watchdog_enabled(3) suggests half): silent for three
  // quarters of it, it has missed a ping.
  return worker.exec ? options_.worker_timeout_ms / 4 * 3 : options_.unresponsive_after_ms;
}

void Supervisor::worker_exited(const event::Exited& exited, std::uint64_t now) {
  const pid_t pid = exited.pid;
  auto it = workers_.find(pid);
  if (it == workers_.end()) return;
  WorkerInfo worker = it->second;
  workers_.erase(it);
  ledger_.retire(pid);
  notify(effect::Notify::What::worker_gone, worker.generation, false, pid);
  std::string how = describe_exit(exited.status, exited.signal);
  // While stopping, every exit is expected and only counts towards the end (below).
  if (worker.generation == serving_ && worker.slot < static_cast<int>(slots_.size()) && !stopping()) {
    SlotInfo& slot = slots_[worker.slot];
    if (slot.successor == pid) {
      // The old worker keeps serving; the next recycle() call tries again.
      PF_LOG_WARN("slot %d: successor %d exited before it was ready (%s)", worker.slot, static_cast<int>(pid),
                  how.c_str());
      slot.successor = 0;
      return;
    }
    if (slot.pid == pid && slot.successor != 0) {
      // Died while its successor was starting: the successor simply takes the slot.
      PF_LOG_ERROR("slot %d: worker %d exited unexpectedly (%s); its successor %d takes over", worker.slot,
                   static_cast<int>(pid), how.c_str(), static_cast<int>(slot.successor));
      slot.pid = slot.successor;
      slot.successor = 0;
      return;
    }
  }

  if (stopping() || worker.state == WorkerState::retiring || worker.killed) {
    bool expected = stopping() || worker.state == WorkerState::retiring;
    if (expected || worker.generation != serving_) {
      PF_LOG_INFO("slot %d: worker %d of generation %u exited (%s)", worker.slot, static_cast<int>(pid),
                  worker.generation, how.c_str());
      check_generation_gone(worker.generation);
      check_stopped();
      return;
    }
    // A serving worker we killed (hung): replaced below like any crash.
  }
  if (worker.generation == starting_) {
    // The reason `-s reload --wait` prints: a program's last words say why.
    std::string last = exited.last_output.empty() ? "" : "; its last output: \"" + exited.last_output + "\"";
    abandon("worker " + std::to_string(pid) + " exited during start (" + how + last + ")", now);
  } else if (worker.generation == serving_ && worker.slot < static_cast<int>(slots_.size()) &&
             slots_[worker.slot].pid == pid) {
    PF_LOG_ERROR("slot %d: worker %d exited unexpectedly (%s)%s", worker.slot, static_cast<int>(pid), how.c_str(),
                 worker.announced_stopping ? ", after announcing STOPPING=1" : "");
    ++worker_crashes_;
    SlotInfo& slot = slots_[worker.slot];
    bool was_healthy = worker.state == WorkerState::ready &&
                       now - worker.started_ms >= options_.backoff.healthy_after_ms;
    slot.failures = was_healthy ? 1 : slot.failures + 1;
    schedule_restart(worker.slot, now);
  } else {
    check_generation_gone(worker.generation);
  }
}

bool Supervisor::fills_its_slot(const WorkerInfo& worker) const {
  return worker.generation == serving_ && worker.state == WorkerState::ready &&
         worker.slot < static_cast<int>(slots_.size()) && slots_[worker.slot].pid == worker.pid;
}

void Supervisor::check_generation_gone(unsigned generation) {
  if (generation == serving_ || generation == starting_) return;
  for (const auto& [pid, worker] : workers_)
    if (worker.generation == generation) return;
  for (const auto& [key, purpose] : spawning_)
    if (key.first == generation) return;
  ledger_.forget_generation(generation);
  generations_.erase(generation);
  notify(effect::Notify::What::generation_gone, generation);
}

// --- Stop and time -----------------------------------------------------------------

void Supervisor::stop(StopMode mode, std::uint64_t now) {
  if (phase_ == MasterPhase::idle || phase_ == MasterPhase::stopped || phase_ == MasterPhase::terminating) return;
  if (phase_ == MasterPhase::draining && mode == StopMode::graceful) return;
  // Waiting clients learn that their reloads will not happen.
  const char* stopping_why = mode == StopMode::graceful ? "abandoned: the master is stopping (QUIT)"
                                                        : "abandoned: the master is stopping (TERM)";
  if (phase_ == MasterPhase::reloading) reload_finished(false, stopping_why);
  drop_pending_reload(stopping_why);
  // The new master leaving while the old one lives: new connections go back to
  // the old master's sockets before ours let go of theirs (it serves them, or
  // they wait in its queues until it has workers again).
  if (predecessor_ != 0 && !stopping()) {
    std::vector<SteerGroup> back = predecessor_steering();
    if (!back.empty()) out_.push_back(effect::Steer{std::move(back), /*shared=*/true});
  }
  phase_ = mode == StopMode::graceful ? MasterPhase::draining : MasterPhase::terminating;
  starting_ = 0;
  preparing_ = 0;
  reload_pending_ = false;
  scale_pending_ = 0;
  // Let go of the slot sockets first, so that each closes (and new connections
  // are refused) as soon as its worker has taken what is queued.
  sync_sockets();
  PF_LOG_NOTICE("%s stop: %zu worker(s) to stop", mode == StopMode::graceful ? "graceful" : "fast", workers_.size());
  for (auto& [pid, worker] : workers_) {
    if (mode == StopMode::fast) {
      out_.push_back(effect::Signal{pid, SIGTERM});
      worker.stop_sent = true;
    } else if (worker.exec) {
      if (!worker.stop_sent) send_stop_signal(worker);  // one still lingering, too: the sockets go now
    } else if (worker.state != WorkerState::retiring) {
      out_.push_back(effect::Signal{pid, SIGQUIT});
    }
  }
  // Escalating from graceful to fast may bring the SIGKILL deadline forward, never
  // push it back, and never resend SIGKILL.
  std::uint64_t due = now + (mode == StopMode::graceful ? options_.graceful_timeout_ms : options_.fast_stop_timeout_ms);
  if (stop_kill_due_ms_ == 0 || due < stop_kill_due_ms_) stop_kill_due_ms_ = due;
  check_stopped();
}

void Supervisor::park(std::uint64_t now) {
  if (phase_ != MasterPhase::running && phase_ != MasterPhase::reloading) return;
  // Dropped first: abandoning a reload must not start the queued one.
  drop_pending_reload("abandoned: the workers are being stopped (WINCH)");
  scale_pending_ = 0;
  if (phase_ == MasterPhase::reloading) abandon("the workers are being stopped (WINCH)", now);
  if (phase_ != MasterPhase::running) return;
  phase_ = MasterPhase::parked;
  parked_slots_ = static_cast<int>(slots_.size());
  slots_.clear();  // nothing is refilled until a reload
  PF_LOG_NOTICE("stopping %zu worker(s) gracefully; the master stays (HUP starts a new generation)",
                workers_.size());
  // successor=true: the master keeps every socket for the generation a reload brings
  // back, so the workers let go of them at once (nothing to linger for).
  for (auto& [pid, worker] : workers_)
    if (worker.state != WorkerState::retiring && !worker.killed) retire_worker(worker, /*successor=*/true, now);
}

void Supervisor::reopen_logs() {
  auto it = generations_.find(serving_);
  // Only a worker that has said it is ready has its handlers: to one still starting
  // the signal would be fatal. It may have opened its logs before the rename, so it
  // is told as soon as it is ready.
  // A program may have asked for another signal, or none (reopen_signal).
  std::size_t ready = 0;
  for (auto& [pid, worker] : workers_) {
    if (reopen_signal_of(worker) == 0) continue;
    if (worker.was_ready) ++ready;
    else if (worker.state == WorkerState::starting) worker.reopen_due = true;
  }
  out_.push_back(effect::ReopenLogs{it == generations_.end() ? nullptr : it->second, ready});
  for (const auto& [pid, worker] : workers_)
    if (worker.was_ready && reopen_signal_of(worker) != 0) out_.push_back(effect::Signal{pid, reopen_signal_of(worker)});
}

void Supervisor::recycle(pid_t pid, std::uint64_t) {
  if (phase_ != MasterPhase::running) return;  // a reload or a stop replaces it anyway
  auto it = workers_.find(pid);
  if (it == workers_.end()) return;
  WorkerInfo& worker = it->second;
  if (worker.generation != serving_ || worker.state != WorkerState::ready || worker.killed) return;
  if (worker.slot >= static_cast<int>(slots_.size())) return;
  SlotInfo& slot = slots_[worker.slot];
  if (slot.pid != pid || slot.successor != 0 || spawning(serving_, worker.slot)) return;
  spawn(worker.slot, serving_, SpawnPurpose::successor);
}

void Supervisor::take_over(WorkerInfo& successor, std::uint64_t now) {
  SlotInfo& slot = slots_[successor.slot];
  pid_t old = slot.pid;
  slot.pid = successor.pid;
  slot.successor = 0;
  ++recycles_;
  PF_LOG_NOTICE("slot %d: successor %d ready; retiring worker %d", successor.slot, static_cast<int>(successor.pid),
                static_cast<int>(old));
  if (auto it = workers_.find(old); it != workers_.end() && it->second.state != WorkerState::retiring)
    retire_worker(it->second, /*successor=*/true, now);
}

void Supervisor::tick(std::uint64_t now) {
  if (!stopping()) ready_by_age(now);
  if (phase_ == MasterPhase::running || phase_ == MasterPhase::reloading) {
    for (std::size_t slot = 0; slot < slots_.size(); ++slot) {
      if (slots_[slot].pid == 0 && !spawning(serving_, static_cast<int>(slot)) && slots_[slot].restart_due_ms <= now) {
        ++slots_[slot].restarts;
        fill_slot(static_cast<int>(slot));
      }
    }
  }
  if (phase_ == MasterPhase::reloading && now >= start_due_ms_) {
    abandon("not ready within " + std::to_string(start_due_ms_ - starting_since_ms_) + " ms", now);
  }
  for (auto& [pid, worker] : workers_) {
    if (worker.killed) continue;
    if (worker.state == WorkerState::retiring && worker.exec && !worker.stop_sent && now >= worker.stop_due_ms &&
        !stopping())
      send_stop_signal(worker);  // its linger is over
    if (worker.state == WorkerState::retiring && now >= worker.kill_due_ms && !stopping()) {
      kill_worker(worker, "still draining after graceful_timeout");
    } else if (worker.generation == serving_ && !stopping()) {
      if (worker.state == WorkerState::starting && now >= worker.start_due_ms) {
        kill_worker(worker, "not ready within the start timeout");
      } else if (worker.state == WorkerState::ready && worker.heartbeats &&
                 now - worker.last_seen_ms >= options_.worker_timeout_ms) {
        std::string why = (worker.exec ? "no WATCHDOG=1 for " : "no heartbeat for ") +
                          std::to_string(now - worker.last_seen_ms) + " ms";
        kill_worker(worker, why.c_str());
      } else if (fills_its_slot(worker) && worker.heartbeats && !slots_[worker.slot].steered_away &&
                 now - worker.last_seen_ms >= unresponsive_after_ms(worker)) {
        // Its socket's queue waits for it (or its replacement); nothing new joins it.
        PF_LOG_WARN("slot %d: worker %d silent for %llu ms; steering new connections away from it", worker.slot,
                    static_cast<int>(pid), ull(now - worker.last_seen_ms));
        slots_[worker.slot].steered_away = true;
      }
    }
  }
  if (stopping() && !stop_killed_ && now >= stop_kill_due_ms_) {
    PF_LOG_WARN("stop timeout: killing %zu worker(s) still running", workers_.size());
    stop_killed_ = true;
    for (auto& [pid, worker] : workers_) out_.push_back(effect::Signal{pid, SIGKILL});
  }
}

void Supervisor::check_stopped() {
  if (!stopping() || !workers_.empty() || !spawning_.empty() || !spares_.empty() || spares_spawning_ != 0) return;
  phase_ = MasterPhase::stopped;
  out_.push_back(effect::ArmTimer{0});
  timer_due_ms_ = 0;
  timer_known_ = true;
  out_.push_back(effect::AllStopped{});
}

void Supervisor::rearm_timer() {
  if (phase_ == MasterPhase::stopped || phase_ == MasterPhase::idle) return;
  std::uint64_t due = 0;
  auto consider = [&](std::uint64_t t) {
    if (due == 0 || t < due) due = t;
  };
  if (stopping()) {
    if (!stop_killed_) consider(stop_kill_due_ms_);
  } else {
    for (const SlotInfo& slot : slots_)
      if (slot.pid == 0) consider(slot.restart_due_ms);
    if (phase_ == MasterPhase::reloading) consider(start_due_ms_);
    for (const auto& [pid, worker] : workers_) {
      if (worker.killed) continue;
      if (worker.state == WorkerState::starting && worker.ready_due_ms != 0) consider(worker.ready_due_ms);
      if (worker.state == WorkerState::retiring) {
        consider(worker.kill_due_ms);
        if (worker.exec && !worker.stop_sent) consider(worker.stop_due_ms);
      } else if (worker.generation != serving_) continue;
      else if (worker.state == WorkerState::starting) consider(worker.start_due_ms);
      else if (!worker.heartbeats) continue;  // a program that never sent WATCHDOG=1: supervised by its exit
      else if (fills_its_slot(worker) && !slots_[worker.slot].steered_away)
        consider(worker.last_seen_ms + std::min(unresponsive_after_ms(worker), options_.worker_timeout_ms));
      else consider(worker.last_seen_ms + options_.worker_timeout_ms);
    }
  }
  if (timer_known_ && due == timer_due_ms_) return;
  timer_known_ = true;
  timer_due_ms_ = due;
  out_.push_back(effect::ArmTimer{due});
}

// --- Sockets, steering, news ---------------------------------------------------------

void Supervisor::serve() {
  out_.push_back(effect::ApplyConfig{serving_, generations_.at(serving_)});
  steered_ = steering();
  steered_shared_ = shared_groups();
  out_.push_back(effect::Steer{steered_, steered_shared_});
}

int Supervisor::socket_slots() const {
  // Parked (and reloading from parked), no slot is filled but the master keeps
  // the sockets, and their queues, of the slots it had.
  return slots_.empty() ? parked_slots_ : static_cast<int>(slots_.size());
}

// Exactly the sockets some live or starting worker, the starting generation or
// the serving generation's slots need; none once stopping.
SocketSet Supervisor::needed_sockets() const {
  SocketSet needed;
  if (stopping() || phase_ == MasterPhase::stopped) return needed;
  auto need = [&](unsigned generation, int slot) {
    auto it = generations_.find(generation);
    if (it == generations_.end()) return;
    for (const auto& l : it->second->config.listeners) needed.insert({key_of(l), socket_slot(l, slot)});
  };
  for (const auto& [pid, worker] : workers_) need(worker.generation, worker.slot);
  for (const auto& [key, purpose] : spawning_) need(key.first, key.second);
  for (int slot = 0; slot < socket_slots(); ++slot) need(serving_, slot);
  for (int slot = 0; slot < starting_count_ && starting_ != 0; ++slot) need(starting_, slot);
  needed.insert(held_.begin(), held_.end());
  needed.insert(adopted_.begin(), adopted_.end());
  return needed;
}

std::vector<SteerGroup> Supervisor::steering() const {
  std::vector<SteerGroup> groups;
  // The serving master steers: the new one once its workers are ready, the old
  // one before that and again once it serves after a rollback.
  if (predecessor_steers_ || (successor_ == SuccessorState::serving && phase_ == MasterPhase::parked)) return groups;
  auto it = generations_.find(serving_);
  if (it == generations_.end()) return groups;
  std::set<int> slots;
  for (int slot = 0; slot < socket_slots(); ++slot)
    if (slot >= static_cast<int>(slots_.size()) || !slots_[slot].steered_away) slots.insert(slot);
  // Every slot silent: there is nowhere better to send new connections.
  if (slots.empty())
    for (int slot = 0; slot < socket_slots(); ++slot) slots.insert(slot);
  for (const auto& listener : it->second->config.listeners) groups.push_back(SteerGroup{listener, slots});
  return groups;
}

void Supervisor::sync_sockets() {
  SocketSet needed = needed_sockets();
  if (sockets_dirty_ || !retained_known_ || needed != retained_) {
    retained_ = needed;
    retained_known_ = true;
    sockets_dirty_ = false;
    out_.push_back(effect::RetainSockets{std::move(needed)});
  }
  if (stopping() || phase_ == MasterPhase::stopped) return;
  std::vector<SteerGroup> groups = steering();
  if (groups != steered_ || shared_groups() != steered_shared_) {
    steered_ = groups;
    steered_shared_ = shared_groups();
    out_.push_back(effect::Steer{std::move(groups), steered_shared_});
  }
}

void Supervisor::notify(effect::Notify::What what, unsigned generation, bool ok, pid_t pid) {
  out_.push_back(effect::Notify{.what = what, .generation = generation, .ok = ok, .pid = pid});
}

}  // namespace preforkd
