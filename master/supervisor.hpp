// The master's state machine and the single owner of its state (workers, slots,
// generations and their configurations, which slot sockets are kept and where
// new connections are steered, the workers' counters), free of processes and
// clocks so it can be unit tested: handle() takes one event
// (supervisor_events.hpp) with the current time and returns the effects the
// master must carry out, in order.
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
//   exec worker ([exec]: the operator's program, speaking sd_notify instead of IPC):
//            starting --READY=1, or alive for `ready`--> ready --retire--> retiring
//            (keeps serving through the linger) --stop_signal--> --exit--> (gone);
//            WATCHDOG=1 is its heartbeat (worker_timeout applies from the first one),
//            EXTEND_TIMEOUT_USEC= moves its start (or stop) deadline, STOPPING=1
//            unasked steers new connections away from its slot until it is replaced.
//   spare (prespawn): spawning --spawned--> idle --taken by a Spawn--> a starting worker
//                     idle --no longer wanted (stop, park, USR2, fewer slots)--> killed --exit--> (gone)
//   Spares are made while running, one per serving slot, and never during a reload
//   (they would compete with the generation starting); they hold no socket and no
//   configuration until taken, so one can never serve a stale configuration.
//
// parked (nginx's WINCH): every worker retires gracefully and no slot is refilled; the
// master keeps its slot sockets (connections queue in their backlogs), so a following
// reload serves them again: the fall-back step of a binary upgrade.
//
// A reload requested while one is in progress is remembered and started as soon as
// the current one ends (several coalesce into one), so none is lost and there are
// never two half generations. Scaling (TTIN/TTOU) during a reload waits likewise.
// Every request gets an attempt number and exactly one outcome (Notify
// reload_finished with its reason): requests that coalesce share the queued
// attempt, which reads the configuration after all of them; one abandoned by a
// stop or WINCH, or refused, fails with the reason.
//
// Binary upgrade (USR2), the old master: successor none --USR2--> launching
//   --started--> starting --serving--> serving --exited--> none
//   starting --exited--> none (upgrade failed; a master parked meanwhile resumes)
//   serving, upgrade_handover auto: this master stops gracefully;
//   serving, manual: this master parks (the rollback window): HUP starts a
//   generation of the configuration it served before (not re-read), and when
//   the successor exits a parked master resumes by itself (nginx's behaviour).
//   While a successor runs this master closes none of its slot sockets, creates
//   none (no TTIN/TTOU, no re-read), and steers explicitly (Steer::shared); in
//   the window, parked, it does not steer at all: the serving master does.
// The new master (Start::predecessor): keeps the adopted sockets while the old
//   master lives (they stay in their groups anyway), leaves steering to it until
//   its first generation is ready, then steers explicitly; on a stop it steers
//   back to the old master's sockets before letting go of its own.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "master/backoff.hpp"
#include "master/metrics.hpp"
#include "master/supervisor_events.hpp"

namespace preforkd {

struct SupervisorOptions {
  std::uint64_t graceful_timeout_ms = 30'000;  // a retiring worker is killed after this
  std::uint64_t fast_stop_timeout_ms = 5'000;  // after a fast stop, survivors are killed
  std::uint64_t start_timeout_ms = 10'000;     // a new worker must be ready by then
  std::uint64_t worker_timeout_ms = 30'000;    // a serving worker silent this long is killed
  // A serving worker silent this long (heartbeats come every second) gets no new
  // connections until it speaks again or its replacement is ready: its socket's
  // queue waits for it, the other slots take the new ones.
  std::uint64_t unresponsive_after_ms = 2'000;
  // How long a worker whose sockets nobody else will poll keeps accepting after
  // new traffic has been steered away: long enough for handshakes already begun
  // on its socket to complete and be accepted.
  std::uint32_t linger_ms = 300;
  BackoffPolicy backoff;
};

enum class MasterPhase { idle, running, reloading, parked, draining, terminating, stopped };
// The old master's view of the binary upgrade it started.
enum class SuccessorState { none, launching, starting, serving };
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
  std::uint64_t request_limit = 0;  // max_requests plus this worker's jitter; 0 = never recycled
  bool was_ready = false;           // has said it is ready: its signal handlers exist
  bool reopen_due = false;          // a USR1 came while it was starting: tell it once ready
  bool drain = false;               // started only to take what is queued on a slot that goes away
  std::uint64_t start_due_ms = 0;   // starting: not ready by then = failed
  // Exec mode: the worker is the operator's program (master/exec_worker.hpp).
  bool exec = false;
  bool heartbeats = true;            // judged by worker_timeout: built-ins always, a program once it sent WATCHDOG=1
  std::uint64_t ready_due_ms = 0;    // ready = duration: alive until then = ready; 0: waits for READY=1
  std::uint64_t stop_due_ms = 0;     // retiring: its stop_signal is due (after the linger)
  bool stop_sent = false;            // it has been sent stop_signal (or a stop's TERM)
  bool announced_stopping = false;   // it sent STOPPING=1
  std::string status = {};           // its last STATUS= text
};

// A slot of the serving generation: who fills it, or when it will be filled again.
struct SlotInfo {
  pid_t pid = 0;                    // 0 while backing off
  std::uint64_t restart_due_ms = 0;
  unsigned failures = 0;            // consecutive; reset once a worker stayed up
  unsigned restarts = 0;            // total, for status; kept across reloads
  pid_t successor = 0;              // recycle: the worker starting to take over this slot
  bool steered_away = false;        // its worker stopped answering: no new connections until one does
};

std::string_view to_string(MasterPhase phase);
std::string_view to_string(WorkerState state);

class Supervisor {
 public:
  explicit Supervisor(SupervisorOptions options);

  // One event at loop time `now`; the effects to carry out, in order. Effects
  // that ask a question (PrepareGeneration, Spawn) are answered by handing the
  // result back to handle() as its own event.
  std::vector<Effect> handle(const Event& event, std::uint64_t now);

  MasterPhase phase() const { return phase_; }
  unsigned serving_generation() const { return serving_; }
  unsigned starting_generation() const { return starting_; }
  const std::vector<SlotInfo>& slots() const { return slots_; }
  const std::map<pid_t, WorkerInfo>& workers() const { return workers_; }
  const CounterLedger& ledger() const { return ledger_; }
  bool reload_pending() const { return reload_pending_; }
  unsigned reloads_ok() const { return reloads_ok_; }
  unsigned reloads_failed() const { return reloads_failed_; }
  unsigned recycles() const { return recycles_; }
  SuccessorState successor() const { return successor_; }
  pid_t successor_pid() const { return successor_pid_; }
  // The master this one replaced (USR2) while it lives, else 0.
  pid_t predecessor() const { return predecessor_; }
  // Serving workers that exited or were killed without being asked to stop.
  unsigned worker_crashes() const { return worker_crashes_; }
  // Idle pre-spawned workers (pid -> killed, i.e. asked to exit), and SpawnSpare
  // effects not answered yet.
  const std::map<pid_t, bool>& spares() const { return spares_; }
  int spares_spawning() const { return spares_spawning_; }
  // Times a slot reached backoff.crash_loop_after consecutive failures.
  unsigned crash_loops() const { return crash_loops_; }
  // What worker_timeout is judged with (a program is told it as WATCHDOG_USEC).
  std::uint64_t worker_timeout_ms() const { return options_.worker_timeout_ms; }

 private:
  // Why a Spawn was asked for; the answer (Spawned) is matched against it.
  enum class SpawnPurpose { fill, successor, generation, drain };

  void on(const event::Start&, std::uint64_t now);
  void on(const event::Signal& signal, std::uint64_t now);
  void on(const event::GenerationPrepared& prepared, std::uint64_t now);
  void on(const event::Spawned& spawned, std::uint64_t now);
  void on(const event::WorkerMessage& message, std::uint64_t now);
  void on(const event::Notice& notice, std::uint64_t now);
  void on(const event::ProtocolError& error, std::uint64_t now);
  void on(const event::Exited& exited, std::uint64_t now);
  void on(const event::Timer&, std::uint64_t now) { tick(now); }
  void on(const event::SuccessorStarted& started, std::uint64_t now);
  void on(const event::SuccessorServing& serving, std::uint64_t now);
  void on(const event::SuccessorExited& exited, std::uint64_t now);
  void on(const event::PredecessorGone&, std::uint64_t now);
  void on(const event::SpareSpawned& spawned, std::uint64_t now);

  void reload(std::uint64_t now);
  // USR2: start a new master (effect::StartUpgrade), or refuse with the reason.
  void upgrade(std::uint64_t now);
  // After a binary upgrade's new master exited, or on HUP in the rollback window: a
  // parked master starts a generation of the configuration it serves, not re-read.
  void resume(std::uint64_t now);
  // +1 (TTIN) or -1 (TTOU) slot in the serving generation; never below one.
  void scale(int delta, std::uint64_t now);
  void worker_ready(pid_t pid, std::uint64_t now);
  void worker_heartbeat(pid_t pid, const ipc::Counters& counters, std::uint64_t now);
  // A heartbeat (or WATCHDOG=1): the worker lives; a slot steered away for its
  // silence gets new connections again.
  void worker_alive(WorkerInfo& worker, std::uint64_t now);
  // Exec workers: EXTEND_TIMEOUT_USEC= and STOPPING=1.
  void extend_deadline(WorkerInfo& worker, std::uint64_t usec, std::uint64_t now);
  void program_stopping(WorkerInfo& worker);
  void send_stop_signal(WorkerInfo& worker);
  // Ready by duration (`ready = "2s"`): starting programs alive that long.
  void ready_by_age(std::uint64_t now);
  const ExecConfig* exec_of(unsigned generation) const;
  // The signal USR1 becomes for this worker: SIGUSR1, a program's reopen_signal, or 0.
  int reopen_signal_of(const WorkerInfo& worker) const;
  std::uint64_t start_timeout_ms(const Config& config) const;
  // How long a serving worker may be silent before its slot gets no new connections.
  std::uint64_t unresponsive_after_ms(const WorkerInfo& worker) const;
  // status: exit code if the worker exited, else -1; signal: terminating signal or 0.
  void worker_exited(const event::Exited& exited, std::uint64_t now);
  void stop(StopMode mode, std::uint64_t now);
  // WINCH: retire every worker gracefully and keep the master (and its sockets); a
  // reload brings a new generation back.
  void park(std::uint64_t now);
  // USR1: the master reopens its logs, and tells the workers.
  void reopen_logs();
  // The serving worker `pid` has used up its request budget (max_requests): start a
  // successor for its slot; once that is ready the old one retires. Repeated calls
  // while a successor starts do nothing; a successor that fails is simply retried
  // at the next call.
  void recycle(pid_t pid, std::uint64_t now);
  void tick(std::uint64_t now);

  void begin_generation(std::uint64_t now, bool reuse = false);
  void generation_prepared(unsigned generation, GenerationPtr config, std::uint64_t now);
  void spawn_for_generation(int slot);
  void promote(std::uint64_t now);
  void abandon(const std::string& why, std::uint64_t now);
  void after_reload(std::uint64_t now);
  void fill_slot(int slot);
  // The serving generation's `slot` goes away with no worker to hand its queue to
  // (parked, backing off): a worker takes what is queued, then retires with linger,
  // before the slot's sockets close.
  void drain_slot(int slot);
  void spawn(int slot, unsigned generation, SpawnPurpose purpose);
  bool spawning(unsigned generation, int slot) const { return spawning_.count({generation, slot}) != 0; }
  void unwanted_spawn(const event::Spawned& spawned, std::uint64_t now);
  void add_worker(const event::Spawned& spawned, std::uint64_t now);
  void schedule_restart(int slot, std::uint64_t now);
  void retire_worker(WorkerInfo& worker, bool successor, std::uint64_t now);
  std::uint32_t linger_for(const WorkerInfo& worker, bool successor) const;
  void take_over(WorkerInfo& successor, std::uint64_t now);
  void kill_worker(WorkerInfo& worker, const char* why);
  // A ready worker of the serving generation that is its slot's worker.
  bool fills_its_slot(const WorkerInfo& worker) const;
  void check_generation_gone(unsigned generation);
  // An idle spare for a Spawn of `generation`, taken out of the pool, or 0.
  pid_t take_spare(unsigned generation);
  // Starts or kills spares so that their number matches what is wanted now.
  void sync_spares();
  std::size_t spares_wanted() const;
  // A spare exited: true if `pid` was one (it is forgotten; never a crash).
  bool spare_exited(pid_t pid, int status, int signal);
  void check_stopped();
  void rearm_timer();
  // The serving generation (now `serving_`) and its slot count: apply its
  // settings and steer its listeners to its slots.
  void serve();
  // Emits RetainSockets / Steer when what they would say changed since last
  // time.
  void sync_sockets();
  SocketSet needed_sockets() const;
  std::vector<SteerGroup> steering() const;
  int socket_slots() const;
  void notify(effect::Notify::What what, unsigned generation, bool ok = false, pid_t pid = 0);
  // The outcome of the reload in progress (current_reload_).
  void reload_finished(bool ok, const std::string& reason = {});
  void finish_reload(unsigned attempt, bool ok, const std::string& reason, bool pending);
  void finish_upgrade(unsigned attempt, bool ok, const std::string& reason, pid_t successor);
  // Fails the queued reload, if any, because `why`.
  void drop_pending_reload(const std::string& why);
  // Another master holds sockets of our groups (see Steer::shared).
  bool shared_groups() const { return successor_ != SuccessorState::none || predecessor_ != 0; }
  // The new master stopping while the old lives: its groups, steered to the old master's sockets.
  std::vector<SteerGroup> predecessor_steering() const;
  bool stopping() const { return phase_ == MasterPhase::draining || phase_ == MasterPhase::terminating; }

  SupervisorOptions options_;
  std::vector<Effect> out_;  // the effects of the event being handled
  MasterPhase phase_ = MasterPhase::idle;
  unsigned serving_ = 0;    // the generation whose slots are filled and restarted
  unsigned starting_ = 0;   // a reload's generation, until all its workers are ready
  unsigned preparing_ = 0;  // the generation whose PrepareGeneration is unanswered
  int starting_count_ = 0;
  std::uint64_t start_due_ms_ = 0;
  std::uint64_t starting_since_ms_ = 0;  // when the starting generation began
  unsigned next_generation_ = 1;
  std::map<unsigned, GenerationPtr> generations_;  // while any of its workers lives
  std::vector<SlotInfo> slots_;
  int parked_slots_ = 0;  // parked: the serving generation's slots whose sockets are kept
  std::map<pid_t, WorkerInfo> workers_;
  std::map<std::pair<unsigned, int>, SpawnPurpose> spawning_;  // (generation, slot): Spawn unanswered
  CounterLedger ledger_;
  bool reload_pending_ = false;
  int scale_pending_ = 0;
  unsigned reload_attempts_ = 0;  // reload requests numbered so far
  unsigned current_reload_ = 0;   // the attempt the starting generation answers
  unsigned pending_reload_ = 0;   // the queued attempt, while reload_pending_
  unsigned upgrade_attempts_ = 0;
  unsigned current_upgrade_ = 0;  // the attempt the successor answers
  SuccessorState successor_ = SuccessorState::none;
  pid_t successor_pid_ = 0;
  SocketSet held_;                // the old master: every socket it had when the successor started
  pid_t predecessor_ = 0;         // the new master: the old one, while it lives
  SocketSet adopted_;             // the new master: what the old one handed over, kept while it lives
  bool predecessor_steers_ = false;  // the new master, until its first generation is ready
  unsigned reloads_ok_ = 0;
  unsigned reloads_failed_ = 0;
  unsigned recycles_ = 0;
  unsigned worker_crashes_ = 0;
  unsigned crash_loops_ = 0;
  std::map<pid_t, bool> spares_;  // idle spares: pid -> killed
  int spares_spawning_ = 0;
  bool spares_failing_ = false;  // a spare died unasked: none are made until a reload succeeds
  std::uint64_t stop_kill_due_ms_ = 0;
  bool stop_killed_ = false;
  // What was last asked of the master, so that only changes are sent.
  std::uint64_t timer_due_ms_ = 0;
  bool timer_known_ = false;
  SocketSet retained_;
  bool retained_known_ = false;
  bool sockets_dirty_ = false;  // a failed prepare or spawn may have left sockets behind
  std::vector<SteerGroup> steered_;
  bool steered_shared_ = false;
};

}  // namespace preforkd
