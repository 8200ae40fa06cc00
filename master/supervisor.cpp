// Transitions of the supervisor state machine; see supervisor.hpp for the diagram.
#include "master/supervisor.hpp"

#include <csignal>
#include <cstring>

#include "common/log.hpp"

namespace preforkd {

std::string_view to_string(MasterPhase phase) {
  switch (phase) {
    case MasterPhase::idle: return "idle";
    case MasterPhase::running: return "running";
    case MasterPhase::draining: return "draining";
    case MasterPhase::terminating: return "terminating";
    case MasterPhase::stopped: return "stopped";
  }
  return "?";
}

std::string_view to_string(SlotState state) {
  switch (state) {
    case SlotState::empty: return "empty";
    case SlotState::starting: return "starting";
    case SlotState::ready: return "ready";
    case SlotState::backing_off: return "backing-off";
  }
  return "?";
}

Supervisor::Supervisor(WorkerControl& control, SupervisorOptions options)
    : control_(control), options_(options) {}

void Supervisor::start(std::uint64_t now) {
  if (phase_ != MasterPhase::idle) return;
  phase_ = MasterPhase::running;
  generation_ = 1;
  slots_.assign(static_cast<std::size_t>(options_.workers), Slot{});
  for (int i = 0; i < options_.workers; ++i) spawn_slot(i, now);
  rearm_timer();
}

void Supervisor::spawn_slot(int index, std::uint64_t now) {
  Slot& slot = slots_[index];
  pid_t pid = control_.spawn(index, generation_);
  if (pid <= 0) {
    PF_LOG_ERROR("slot %d: could not start a worker", index);
    ++slot.failures;
    schedule_restart(index, now);
    return;
  }
  slot.state = SlotState::starting;
  slot.pid = pid;
  slot.generation = generation_;
  slot.started_ms = now;
}

void Supervisor::schedule_restart(int index, std::uint64_t now) {
  Slot& slot = slots_[index];
  slot.pid = 0;
  std::uint64_t delay = restart_delay_ms(options_.backoff, slot.failures);
  if (slot.failures >= options_.backoff.crash_loop_after) {
    PF_LOG_ERROR("slot %d: crash loop: %u consecutive failures; next start in %llu ms", index,
                 slot.failures, static_cast<unsigned long long>(delay));
  }
  if (delay == 0) {
    ++slot.restarts;
    spawn_slot(index, now);
    return;
  }
  slot.state = SlotState::backing_off;
  slot.restart_due_ms = now + delay;
}

int Supervisor::slot_of(pid_t pid) const {
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].pid == pid && slots_[i].state != SlotState::empty &&
        slots_[i].state != SlotState::backing_off)
      return static_cast<int>(i);
  }
  return -1;
}

bool Supervisor::all_ready() const {
  for (const Slot& s : slots_)
    if (s.state != SlotState::ready) return false;
  return !slots_.empty();
}

std::size_t Supervisor::live_workers() const {
  std::size_t n = 0;
  for (const Slot& s : slots_) n += (s.state == SlotState::starting || s.state == SlotState::ready);
  return n;
}

void Supervisor::worker_ready(pid_t pid, std::uint64_t) {
  int index = slot_of(pid);
  if (index < 0) return;
  Slot& slot = slots_[index];
  if (slot.state != SlotState::starting) return;
  slot.state = SlotState::ready;
  PF_LOG_INFO("slot %d: worker %d of generation %u ready", index, static_cast<int>(pid), slot.generation);
  if (phase_ == MasterPhase::running && !announced_ready_ && all_ready()) {
    announced_ready_ = true;
    PF_LOG_NOTICE("generation %u: all %zu workers ready", generation_, slots_.size());
  }
}

void Supervisor::worker_exited(pid_t pid, int status, int signal, std::uint64_t now) {
  int index = slot_of(pid);
  if (index < 0) return;
  Slot& slot = slots_[index];
  bool stopping = phase_ == MasterPhase::draining || phase_ == MasterPhase::terminating;
  if (stopping) {
    PF_LOG_INFO("slot %d: worker %d exited (%s %d)", index, static_cast<int>(pid),
                signal ? "signal" : "status", signal ? signal : status);
    slot = Slot{};
    check_stopped();
    rearm_timer();
    return;
  }
  if (signal) {
    PF_LOG_ERROR("slot %d: worker %d killed by signal %d (%s)", index, static_cast<int>(pid), signal,
                 strsignal(signal));
  } else {
    PF_LOG_ERROR("slot %d: worker %d exited unexpectedly with status %d", index, static_cast<int>(pid), status);
  }
  bool was_healthy = slot.state == SlotState::ready && now - slot.started_ms >= options_.backoff.healthy_after_ms;
  slot.failures = was_healthy ? 1 : slot.failures + 1;
  schedule_restart(index, now);
  rearm_timer();
}

void Supervisor::stop(StopMode mode, std::uint64_t now) {
  if (phase_ == MasterPhase::stopped || phase_ == MasterPhase::terminating) return;
  if (phase_ == MasterPhase::draining && mode == StopMode::graceful) return;
  phase_ = mode == StopMode::graceful ? MasterPhase::draining : MasterPhase::terminating;
  PF_LOG_NOTICE("%s stop: %zu worker(s) to stop", mode == StopMode::graceful ? "graceful" : "fast",
                live_workers());
  for (Slot& slot : slots_)
    if (slot.state == SlotState::backing_off) slot = Slot{};
  signal_all(mode == StopMode::graceful ? SIGQUIT : SIGTERM);
  // Escalating from graceful to fast may bring the SIGKILL deadline forward, never
  // push it back, and never resend SIGKILL.
  std::uint64_t due = now + (mode == StopMode::graceful ? options_.graceful_timeout_ms : options_.fast_stop_timeout_ms);
  if (kill_due_ms_ == 0 || due < kill_due_ms_) kill_due_ms_ = due;
  check_stopped();
  rearm_timer();
}

void Supervisor::tick(std::uint64_t now) {
  if (phase_ == MasterPhase::running) {
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      Slot& slot = slots_[i];
      if (slot.state == SlotState::backing_off && slot.restart_due_ms <= now) {
        ++slot.restarts;
        spawn_slot(static_cast<int>(i), now);
      }
    }
  } else if ((phase_ == MasterPhase::draining || phase_ == MasterPhase::terminating) && !killed_ &&
             kill_due_ms_ <= now) {
    PF_LOG_WARN("stop timeout: killing %zu worker(s) still running", live_workers());
    killed_ = true;
    signal_all(SIGKILL);
  }
  rearm_timer();
}

void Supervisor::signal_all(int signum) {
  for (const Slot& slot : slots_)
    if (slot.pid > 0 && (slot.state == SlotState::starting || slot.state == SlotState::ready))
      control_.signal(slot.pid, signum);
}

void Supervisor::check_stopped() {
  if (phase_ == MasterPhase::stopped || live_workers() > 0) return;
  phase_ = MasterPhase::stopped;
  control_.set_timer(0);
  control_.all_stopped();
}

void Supervisor::rearm_timer() {
  std::uint64_t due = 0;
  auto consider = [&](std::uint64_t t) {
    if (due == 0 || t < due) due = t;
  };
  if (phase_ == MasterPhase::running) {
    for (const Slot& slot : slots_)
      if (slot.state == SlotState::backing_off) consider(slot.restart_due_ms);
  } else if ((phase_ == MasterPhase::draining || phase_ == MasterPhase::terminating) && !killed_) {
    consider(kill_due_ms_);
  }
  control_.set_timer(due);
}

}  // namespace preforkd
