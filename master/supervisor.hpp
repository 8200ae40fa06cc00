// The master's state machine, free of processes and clocks so it can be unit
// tested: the master feeds it events (start, worker ready, worker exited, stop,
// timer) with the current time, and it asks for actions through WorkerControl
// (spawn, signal, arm the timer, exit).
//
//   master:  running --stop(graceful)--> draining --all exited--> stopped
//            running --stop(fast)-----> terminating --all exited--> stopped
//            (a fast stop during draining escalates; past a deadline: SIGKILL)
//   slot:    starting --ready--> ready --exit--> backing_off --timer--> starting
//            (an exit while the master stops leaves the slot empty)
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "master/backoff.hpp"

namespace preforkd {

class WorkerControl {
 public:
  virtual ~WorkerControl() = default;
  // Starts a worker for slot in generation; returns its pid, or a negative error.
  virtual pid_t spawn(int slot, unsigned generation) = 0;
  virtual void signal(pid_t pid, int signum) = 0;
  // Wake the supervisor (tick) at this time; 0 cancels. Replaces any earlier request.
  virtual void set_timer(std::uint64_t due_ms) = 0;
  // Every worker is gone after a stop: the master may exit.
  virtual void all_stopped() = 0;
};

struct SupervisorOptions {
  int workers = 1;
  std::uint64_t graceful_timeout_ms = 30'000;
  // After a fast stop, workers that ignore SIGTERM this long are killed.
  std::uint64_t fast_stop_timeout_ms = 5'000;
  BackoffPolicy backoff;
};

enum class MasterPhase { idle, running, draining, terminating, stopped };
enum class SlotState { empty, starting, ready, backing_off };
enum class StopMode { graceful, fast };

struct Slot {
  SlotState state = SlotState::empty;
  pid_t pid = 0;
  unsigned generation = 0;
  std::uint64_t started_ms = 0;
  std::uint64_t restart_due_ms = 0;
  unsigned failures = 0;  // consecutive; reset once the worker has been healthy
  unsigned restarts = 0;  // total, for status
};

std::string_view to_string(MasterPhase phase);
std::string_view to_string(SlotState state);

class Supervisor {
 public:
  Supervisor(WorkerControl& control, SupervisorOptions options);

  void start(std::uint64_t now);
  void worker_ready(pid_t pid, std::uint64_t now);
  // status: exit code if the worker exited, else -1; signal: terminating signal or 0.
  void worker_exited(pid_t pid, int status, int signal, std::uint64_t now);
  void stop(StopMode mode, std::uint64_t now);
  void tick(std::uint64_t now);

  MasterPhase phase() const { return phase_; }
  unsigned generation() const { return generation_; }
  const std::vector<Slot>& slots() const { return slots_; }
  bool all_ready() const;
  std::size_t live_workers() const;

 private:
  void spawn_slot(int index, std::uint64_t now);
  void schedule_restart(int index, std::uint64_t now);
  void signal_all(int signum);
  void rearm_timer();
  void check_stopped();
  int slot_of(pid_t pid) const;

  WorkerControl& control_;
  SupervisorOptions options_;
  MasterPhase phase_ = MasterPhase::idle;
  unsigned generation_ = 0;
  std::vector<Slot> slots_;
  bool announced_ready_ = false;
  std::uint64_t kill_due_ms_ = 0;  // while stopping: when survivors get SIGKILL
  bool killed_ = false;
};

}  // namespace preforkd
