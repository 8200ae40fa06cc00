// The master's state machine, free of processes and clocks so it can be unit
// tested: the master feeds it events (start, reload, scale, worker ready /
// heartbeat / exited, stop, timer) with the current time, and it asks for actions
// through WorkerControl (spawn, signal, retire, arm the timer, ...).
//
//   master:  running --reload--> reloading --new generation all ready--> running
//                                reloading --a new worker fails / start timeout--> running (old kept)
//            running | reloading --park (WINCH)--> parked --reload (HUP)--> reloading --ready--> running
//            running | reloading | parked --stop(graceful)--> draining --all exited--> stopped
//            running | reloading --stop(fast)-----> terminating --all exited--> stopped
//   worker:  starting --ready--> ready --retire--> retiring --exit--> (gone)
//   slot of the serving generation: a worker, or backing-off until its restart is due;
//   recycle (max_requests): slot's worker --recycle--> + successor starting --successor ready-->
//                           successor fills the slot, the old worker retires (handover as in a reload)
//
// parked (nginx's WINCH): every worker retires gracefully and no slot is refilled; the
// master keeps its slot sockets (connections queue in their backlogs), so a following
// reload serves them again: the fall-back step of a binary upgrade.
//
// A reload requested while one is in progress is remembered and started as soon as
// the current one ends (several coalesce into one), so none is lost and there are
// never two half generations. Scaling (TTIN/TTOU) during a reload waits likewise.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "master/backoff.hpp"

namespace preforkd {

class WorkerControl {
 public:
  virtual ~WorkerControl() = default;
  // Reads and validates the configuration for `generation`; returns its worker
  // count, or 0 when it is invalid (the control logs why) and nothing may change.
  virtual int prepare_generation(unsigned generation) = 0;
  // Starts a worker for slot in generation; returns its pid, or a negative error.
  virtual pid_t spawn(int slot, unsigned generation) = 0;
  virtual void signal(pid_t pid, int signum) = 0;
  // Tells a worker to stop accepting, finish in-flight work and exit. successor:
  // the same slot of the serving generation will poll the same sockets.
  virtual void retire(pid_t pid, bool successor) = 0;
  // `generation` now serves with `slots` slots; called before workers beyond them retire.
  virtual void serving(unsigned generation, int slots) = 0;
  // Every slot of the serving `generation` has a ready worker.
  virtual void generation_ready(unsigned /*generation*/) {}
  // A reload ended: `generation` serves now (ok), or it failed and the serving one
  // stays. Called before a reload queued meanwhile begins (reload_pending() tells).
  virtual void reload_finished(unsigned /*generation*/, bool /*ok*/) {}
  // A generation's workers are all gone, or it was abandoned before serving.
  virtual void generation_gone(unsigned generation) = 0;
  // A worker exited (after the supervisor has forgotten it).
  virtual void worker_gone(pid_t pid) = 0;
  // Wake the supervisor (tick) at this time; 0 cancels. Replaces any earlier request.
  virtual void set_timer(std::uint64_t due_ms) = 0;
  // Every worker is gone after a stop: the master may exit.
  virtual void all_stopped() = 0;
};

struct SupervisorOptions {
  std::uint64_t graceful_timeout_ms = 30'000;  // a retiring worker is killed after this
  std::uint64_t fast_stop_timeout_ms = 5'000;  // after a fast stop, survivors are killed
  std::uint64_t start_timeout_ms = 10'000;     // a new worker must be ready by then
  std::uint64_t worker_timeout_ms = 30'000;    // a serving worker silent this long is killed
  BackoffPolicy backoff;
};

enum class MasterPhase { idle, running, reloading, parked, draining, terminating, stopped };
enum class WorkerState { starting, ready, retiring };
enum class StopMode { graceful, fast };

struct WorkerInfo {
  pid_t pid = 0;
  int slot = 0;
  unsigned generation = 0;
  WorkerState state = WorkerState::starting;
  std::uint64_t started_ms = 0;
  std::uint64_t last_seen_ms = 0;  // start, ready or last heartbeat
  std::uint64_t kill_due_ms = 0;   // retiring: SIGKILL at this time
  bool killed = false;
};

// A slot of the serving generation: who fills it, or when it will be filled again.
struct SlotInfo {
  pid_t pid = 0;                    // 0 while backing off
  std::uint64_t restart_due_ms = 0;
  unsigned failures = 0;            // consecutive; reset once a worker stayed up
  unsigned restarts = 0;            // total, for status; kept across reloads
  pid_t successor = 0;              // recycle: the worker starting to take over this slot
};

std::string_view to_string(MasterPhase phase);
std::string_view to_string(WorkerState state);

class Supervisor {
 public:
  Supervisor(WorkerControl& control, SupervisorOptions options);

  // Starts generation 1; false if its configuration cannot be prepared.
  bool start(std::uint64_t now);
  void reload(std::uint64_t now);
  // +1 (TTIN) or -1 (TTOU) slot in the serving generation; never below one.
  void scale(int delta, std::uint64_t now);
  void worker_ready(pid_t pid, std::uint64_t now);
  void worker_heartbeat(pid_t pid, std::uint64_t now);
  // status: exit code if the worker exited, else -1; signal: terminating signal or 0.
  void worker_exited(pid_t pid, int status, int signal, std::uint64_t now);
  void stop(StopMode mode, std::uint64_t now);
  // WINCH: retire every worker gracefully and keep the master (and its sockets); a
  // reload brings a new generation back.
  void park(std::uint64_t now);
  // The serving worker `pid` has used up its request budget (max_requests): start a
  // successor for its slot; once that is ready the old one retires. Repeated calls
  // while a successor starts do nothing; a successor that fails is simply retried
  // at the next call.
  void recycle(pid_t pid, std::uint64_t now);
  void tick(std::uint64_t now);

  MasterPhase phase() const { return phase_; }
  unsigned serving_generation() const { return serving_; }
  unsigned starting_generation() const { return starting_; }
  const std::vector<SlotInfo>& slots() const { return slots_; }
  const std::map<pid_t, WorkerInfo>& workers() const { return workers_; }
  bool reload_pending() const { return reload_pending_; }
  unsigned reloads_ok() const { return reloads_ok_; }
  unsigned reloads_failed() const { return reloads_failed_; }
  unsigned recycles() const { return recycles_; }
  // Serving workers that exited or were killed without being asked to stop.
  unsigned worker_crashes() const { return worker_crashes_; }
  // Times a slot reached backoff.crash_loop_after consecutive failures.
  unsigned crash_loops() const { return crash_loops_; }

 private:
  bool begin_generation(std::uint64_t now);
  void promote(std::uint64_t now);
  void abandon(const std::string& why, std::uint64_t now);
  void after_reload(std::uint64_t now);
  void fill_slot(int slot, std::uint64_t now);
  void schedule_restart(int slot, std::uint64_t now);
  void retire_worker(WorkerInfo& worker, bool successor, std::uint64_t now);
  void take_over(WorkerInfo& successor, std::uint64_t now);
  void kill_worker(WorkerInfo& worker, const char* why);
  void check_generation_gone(unsigned generation);
  void check_stopped();
  void rearm_timer();
  bool stopping() const { return phase_ == MasterPhase::draining || phase_ == MasterPhase::terminating; }

  WorkerControl& control_;
  SupervisorOptions options_;
  MasterPhase phase_ = MasterPhase::idle;
  unsigned serving_ = 0;       // the generation whose slots are filled and restarted
  unsigned starting_ = 0;      // a reload's generation, until all its workers are ready
  int starting_count_ = 0;
  std::uint64_t start_due_ms_ = 0;
  std::uint64_t starting_since_ms_ = 0;  // when the starting generation began
  unsigned next_generation_ = 1;
  std::vector<SlotInfo> slots_;
  std::map<pid_t, WorkerInfo> workers_;
  bool reload_pending_ = false;
  int scale_pending_ = 0;
  unsigned reloads_ok_ = 0;
  unsigned reloads_failed_ = 0;
  unsigned recycles_ = 0;
  unsigned worker_crashes_ = 0;
  unsigned crash_loops_ = 0;
  std::uint64_t stop_kill_due_ms_ = 0;
  bool stop_killed_ = false;
};

}  // namespace preforkd
