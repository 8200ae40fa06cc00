// Transitions of the supervisor state machine; see supervisor.hpp for the diagram.
#include "master/supervisor.hpp"

#include <csignal>
#include <cstring>

#include "common/log.hpp"

namespace preforkd {
namespace {

unsigned long long ull(std::uint64_t v) { return static_cast<unsigned long long>(v); }

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

Supervisor::Supervisor(WorkerControl& control, SupervisorOptions options)
    : control_(control), options_(options) {}

bool Supervisor::start(std::uint64_t now) {
  if (phase_ != MasterPhase::idle) return false;
  unsigned generation = next_generation_++;
  int count = control_.prepare_generation(generation);
  if (count <= 0) return false;
  phase_ = MasterPhase::running;
  serving_ = generation;
  slots_.assign(static_cast<std::size_t>(count), SlotInfo{});
  control_.serving(serving_, count);
  for (int slot = 0; slot < count; ++slot) fill_slot(slot, now);
  rearm_timer();
  return true;
}

// --- Reload ----------------------------------------------------------------------

void Supervisor::reload(std::uint64_t now) {
  if (phase_ == MasterPhase::reloading) {
    PF_LOG_NOTICE("reload requested while generation %u is starting: it will follow", starting_);
    reload_pending_ = true;
    return;
  }
  if (phase_ != MasterPhase::running && phase_ != MasterPhase::parked) return;
  begin_generation(now);
  rearm_timer();
}

bool Supervisor::begin_generation(std::uint64_t now) {
  unsigned generation = next_generation_++;
  int count = control_.prepare_generation(generation);
  if (count <= 0) {
    ++reloads_failed_;
    PF_LOG_ERROR("reload failed: generation %u keeps serving", serving_);
    control_.reload_finished(serving_, false);
    return false;
  }
  phase_ = MasterPhase::reloading;
  starting_ = generation;
  starting_count_ = count;
  start_due_ms_ = now + options_.start_timeout_ms;
  starting_since_ms_ = now;
  PF_LOG_NOTICE("reload: starting generation %u with %d worker(s)", generation, count);
  for (int slot = 0; slot < count; ++slot) {
    pid_t pid = control_.spawn(slot, generation);
    if (pid <= 0) {
      abandon("could not start a worker for slot " + std::to_string(slot), now);
      return false;
    }
    workers_[pid] = WorkerInfo{pid, slot, generation, WorkerState::starting, now, now, 0, false};
  }
  return true;
}

void Supervisor::promote(std::uint64_t now) {
  unsigned old = serving_;
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
  // The time from the reload request to serving is the figure operators (and
  // bench/run) want for "how long does a reload take".
  PF_LOG_NOTICE("generation %u: all %d workers ready; retiring generation %u (serving %llu ms after the reload began)",
                serving_, starting_count_, old, static_cast<unsigned long long>(now - starting_since_ms_));
  // Steering first: a slot that will have no successor must stop receiving before it retires.
  control_.serving(serving_, starting_count_);
  for (auto& [pid, worker] : workers_)
    if (worker.generation != serving_ && worker.state != WorkerState::retiring)
      retire_worker(worker, worker.slot < starting_count_, now);
  check_generation_gone(old);
  control_.generation_ready(serving_);
  control_.reload_finished(serving_, true);
  after_reload(now);
}

void Supervisor::abandon(const std::string& why, std::uint64_t now) {
  unsigned generation = starting_;
  ++reloads_failed_;
  PF_LOG_ERROR("reload to generation %u failed: %s; generation %u keeps serving", generation, why.c_str(), serving_);
  for (auto& [pid, worker] : workers_)
    if (worker.generation == generation && !worker.killed) kill_worker(worker, "its generation was abandoned");
  starting_ = 0;
  // A parked master (no slots) that failed to come back stays parked.
  phase_ = slots_.empty() ? MasterPhase::parked : MasterPhase::running;
  check_generation_gone(generation);
  control_.reload_finished(serving_, false);
  after_reload(now);
}

void Supervisor::after_reload(std::uint64_t now) {
  if (reload_pending_) {
    reload_pending_ = false;
    // A queued reload that cannot start leaves us running: pending scaling applies now.
    if (begin_generation(now)) return;
  }
  while (scale_pending_ != 0 && phase_ == MasterPhase::running) {
    int step = scale_pending_ > 0 ? 1 : -1;
    scale_pending_ -= step;
    scale(step, now);
  }
}

// --- Scaling -------------------------------------------------------------------

void Supervisor::scale(int delta, std::uint64_t now) {
  if (phase_ == MasterPhase::reloading) {
    scale_pending_ += delta;
    return;
  }
  if (phase_ != MasterPhase::running || delta == 0) return;
  if (delta > 0) {
    slots_.emplace_back();
    int slot = static_cast<int>(slots_.size()) - 1;
    PF_LOG_NOTICE("scaling up: slot %d added to generation %u", slot, serving_);
    control_.serving(serving_, static_cast<int>(slots_.size()));
    fill_slot(slot, now);
  } else {
    if (slots_.size() <= 1) {
      PF_LOG_WARN("scaling down: already at one worker");
      return;
    }
    SlotInfo last = slots_.back();
    slots_.pop_back();
    PF_LOG_NOTICE("scaling down: slot %zu leaves generation %u", slots_.size(), serving_);
    control_.serving(serving_, static_cast<int>(slots_.size()));
    for (pid_t pid : {last.pid, last.successor})
      if (auto it = workers_.find(pid); pid != 0 && it != workers_.end())
        retire_worker(it->second, /*successor=*/false, now);
  }
  rearm_timer();
}

// --- Workers -------------------------------------------------------------------

void Supervisor::fill_slot(int slot, std::uint64_t now) {
  pid_t pid = control_.spawn(slot, serving_);
  if (pid <= 0) {
    PF_LOG_ERROR("slot %d: could not start a worker", slot);
    ++slots_[slot].failures;
    schedule_restart(slot, now);
    return;
  }
  slots_[slot].pid = pid;
  workers_[pid] = WorkerInfo{pid, slot, serving_, WorkerState::starting, now, now, 0, false};
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
    fill_slot(slot, now);
    return;
  }
  info.restart_due_ms = now + delay;
}

void Supervisor::retire_worker(WorkerInfo& worker, bool successor, std::uint64_t now) {
  worker.state = WorkerState::retiring;
  worker.kill_due_ms = now + options_.graceful_timeout_ms;
  control_.retire(worker.pid, successor);
}

void Supervisor::kill_worker(WorkerInfo& worker, const char* why) {
  PF_LOG_WARN("slot %d: killing worker %d of generation %u: %s", worker.slot, static_cast<int>(worker.pid),
              worker.generation, why);
  worker.killed = true;
  control_.signal(worker.pid, SIGKILL);
}

void Supervisor::worker_ready(pid_t pid, std::uint64_t now) {
  auto it = workers_.find(pid);
  if (it == workers_.end() || it->second.state != WorkerState::starting) return;
  WorkerInfo& worker = it->second;
  worker.state = WorkerState::ready;
  worker.last_seen_ms = now;
  PF_LOG_INFO("slot %d: worker %d of generation %u ready", worker.slot, static_cast<int>(pid), worker.generation);
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
      control_.generation_ready(serving_);
    }
  }
  rearm_timer();
}

void Supervisor::worker_heartbeat(pid_t pid, std::uint64_t now) {
  if (auto it = workers_.find(pid); it != workers_.end()) it->second.last_seen_ms = now;
}

void Supervisor::worker_exited(pid_t pid, int status, int signal, std::uint64_t now) {
  auto it = workers_.find(pid);
  if (it == workers_.end()) return;
  WorkerInfo worker = it->second;
  workers_.erase(it);
  control_.worker_gone(pid);
  std::string how = describe_exit(status, signal);
  if (worker.generation == serving_ && worker.slot < static_cast<int>(slots_.size())) {
    SlotInfo& slot = slots_[worker.slot];
    if (slot.successor == pid) {
      // The old worker keeps serving; the next recycle() call tries again.
      PF_LOG_WARN("slot %d: successor %d exited before it was ready (%s)", worker.slot, static_cast<int>(pid),
                  how.c_str());
      slot.successor = 0;
      rearm_timer();
      return;
    }
    if (slot.pid == pid && slot.successor != 0 && !stopping()) {
      // Died while its successor was starting: the successor simply takes the slot.
      PF_LOG_ERROR("slot %d: worker %d exited unexpectedly (%s); its successor %d takes over", worker.slot,
                   static_cast<int>(pid), how.c_str(), static_cast<int>(slot.successor));
      slot.pid = slot.successor;
      slot.successor = 0;
      rearm_timer();
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
      rearm_timer();
      return;
    }
    // A serving worker we killed (hung): replaced below like any crash.
  }
  if (worker.generation == starting_) {
    abandon("worker " + std::to_string(pid) + " exited during start (" + how + ")", now);
  } else if (worker.generation == serving_ && worker.slot < static_cast<int>(slots_.size()) &&
             slots_[worker.slot].pid == pid) {
    PF_LOG_ERROR("slot %d: worker %d exited unexpectedly (%s)", worker.slot, static_cast<int>(pid), how.c_str());
    ++worker_crashes_;
    SlotInfo& slot = slots_[worker.slot];
    bool was_healthy = worker.state == WorkerState::ready &&
                       now - worker.started_ms >= options_.backoff.healthy_after_ms;
    slot.failures = was_healthy ? 1 : slot.failures + 1;
    schedule_restart(worker.slot, now);
  } else {
    check_generation_gone(worker.generation);
  }
  rearm_timer();
}

void Supervisor::check_generation_gone(unsigned generation) {
  if (generation == serving_ || generation == starting_) return;
  for (const auto& [pid, worker] : workers_)
    if (worker.generation == generation) return;
  control_.generation_gone(generation);
}

// --- Stop and time -----------------------------------------------------------------

void Supervisor::stop(StopMode mode, std::uint64_t now) {
  if (phase_ == MasterPhase::idle || phase_ == MasterPhase::stopped || phase_ == MasterPhase::terminating) return;
  if (phase_ == MasterPhase::draining && mode == StopMode::graceful) return;
  phase_ = mode == StopMode::graceful ? MasterPhase::draining : MasterPhase::terminating;
  starting_ = 0;
  reload_pending_ = false;
  scale_pending_ = 0;
  PF_LOG_NOTICE("%s stop: %zu worker(s) to stop", mode == StopMode::graceful ? "graceful" : "fast", workers_.size());
  for (auto& [pid, worker] : workers_) {
    if (mode == StopMode::fast) {
      control_.signal(pid, SIGTERM);
    } else if (worker.state != WorkerState::retiring) {
      control_.signal(pid, SIGQUIT);
    }
  }
  // Escalating from graceful to fast may bring the SIGKILL deadline forward, never
  // push it back, and never resend SIGKILL.
  std::uint64_t due = now + (mode == StopMode::graceful ? options_.graceful_timeout_ms : options_.fast_stop_timeout_ms);
  if (stop_kill_due_ms_ == 0 || due < stop_kill_due_ms_) stop_kill_due_ms_ = due;
  check_stopped();
  rearm_timer();
}

void Supervisor::park(std::uint64_t now) {
  if (phase_ != MasterPhase::running && phase_ != MasterPhase::reloading) return;
  // Cleared first: abandoning a reload must not start the queued one.
  reload_pending_ = false;
  scale_pending_ = 0;
  if (phase_ == MasterPhase::reloading) abandon("the workers are being stopped (WINCH)", now);
  if (phase_ != MasterPhase::running) return;
  phase_ = MasterPhase::parked;
  slots_.clear();  // nothing is refilled until a reload
  PF_LOG_NOTICE("stopping %zu worker(s) gracefully; the master stays (HUP starts a new generation)",
                workers_.size());
  // successor=true: the master keeps every socket for the generation a reload brings
  // back, so the workers let go of them at once (nothing to linger for).
  for (auto& [pid, worker] : workers_)
    if (worker.state != WorkerState::retiring && !worker.killed) retire_worker(worker, /*successor=*/true, now);
  rearm_timer();
}

void Supervisor::recycle(pid_t pid, std::uint64_t now) {
  if (phase_ != MasterPhase::running) return;  // a reload or a stop replaces it anyway
  auto it = workers_.find(pid);
  if (it == workers_.end()) return;
  WorkerInfo& worker = it->second;
  if (worker.generation != serving_ || worker.state != WorkerState::ready || worker.killed) return;
  if (worker.slot >= static_cast<int>(slots_.size())) return;
  SlotInfo& slot = slots_[worker.slot];
  if (slot.pid != pid || slot.successor != 0) return;
  pid_t successor = control_.spawn(worker.slot, serving_);
  if (successor <= 0) {
    PF_LOG_ERROR("slot %d: could not start a successor for worker %d", worker.slot, static_cast<int>(pid));
    return;
  }
  PF_LOG_NOTICE("slot %d: worker %d reached max_requests; starting successor %d", worker.slot,
                static_cast<int>(pid), static_cast<int>(successor));
  slot.successor = successor;
  workers_[successor] = WorkerInfo{successor, worker.slot, serving_, WorkerState::starting, now, now, 0, false};
  rearm_timer();
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
  if (phase_ == MasterPhase::running || phase_ == MasterPhase::reloading) {
    for (std::size_t slot = 0; slot < slots_.size(); ++slot) {
      if (slots_[slot].pid == 0 && slots_[slot].restart_due_ms <= now) {
        ++slots_[slot].restarts;
        fill_slot(static_cast<int>(slot), now);
      }
    }
  }
  if (phase_ == MasterPhase::reloading && now >= start_due_ms_) {
    abandon("not ready within " + std::to_string(options_.start_timeout_ms) + " ms", now);
  }
  for (auto& [pid, worker] : workers_) {
    if (worker.killed) continue;
    if (worker.state == WorkerState::retiring && now >= worker.kill_due_ms && !stopping()) {
      kill_worker(worker, "still draining after graceful_timeout");
    } else if (worker.generation == serving_ && !stopping()) {
      if (worker.state == WorkerState::starting && now - worker.started_ms >= options_.start_timeout_ms) {
        kill_worker(worker, "not ready within the start timeout");
      } else if (worker.state == WorkerState::ready && now - worker.last_seen_ms >= options_.worker_timeout_ms) {
        std::string why = "no heartbeat for " + std::to_string(now - worker.last_seen_ms) + " ms";
        kill_worker(worker, why.c_str());
      }
    }
  }
  if (stopping() && !stop_killed_ && now >= stop_kill_due_ms_) {
    PF_LOG_WARN("stop timeout: killing %zu worker(s) still running", workers_.size());
    stop_killed_ = true;
    for (auto& [pid, worker] : workers_) control_.signal(pid, SIGKILL);
  }
  rearm_timer();
}

void Supervisor::check_stopped() {
  if (!stopping() || !workers_.empty()) return;
  phase_ = MasterPhase::stopped;
  control_.set_timer(0);
  control_.all_stopped();
}

void Supervisor::rearm_timer() {
  if (phase_ == MasterPhase::stopped || phase_ == MasterPhase::idle) return control_.set_timer(0);
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
      if (worker.state == WorkerState::retiring) consider(worker.kill_due_ms);
      else if (worker.generation != serving_) continue;
      else if (worker.state == WorkerState::starting) consider(worker.started_ms + options_.start_timeout_ms);
      else consider(worker.last_seen_ms + options_.worker_timeout_ms);
    }
  }
  control_.set_timer(due);
}

}  // namespace preforkd
