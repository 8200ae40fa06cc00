// The supervisor state machine, driven with a fake WorkerControl and a fake clock.
#include "master/supervisor.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace preforkd {
namespace {

struct SpawnCall {
  int slot;
  unsigned generation;
  pid_t pid;  // what spawn() returned (-1 for a failure)
};

struct SignalCall {
  pid_t pid;
  int signum;
  bool operator==(const SignalCall&) const = default;
};

class FakeControl : public WorkerControl {
 public:
  pid_t spawn(int slot, unsigned generation) override {
    pid_t pid = -1;
    if (fail_next > 0) {
      --fail_next;
    } else {
      pid = next_pid++;
    }
    spawns.push_back({slot, generation, pid});
    return pid;
  }
  void signal(pid_t pid, int signum) override { signals.push_back({pid, signum}); }
  void set_timer(std::uint64_t due_ms) override {
    timer = due_ms;
    ++timer_calls;
  }
  void all_stopped() override { ++stopped_calls; }

  // pid of the most recent successful spawn for slot, or -1.
  pid_t last_pid(int slot) const {
    for (auto it = spawns.rbegin(); it != spawns.rend(); ++it)
      if (it->slot == slot && it->pid > 0) return it->pid;
    return -1;
  }
  std::size_t spawn_count(int slot) const {
    std::size_t n = 0;
    for (const SpawnCall& s : spawns) n += s.slot == slot;
    return n;
  }
  std::vector<SignalCall> signals_with(int signum) const {
    std::vector<SignalCall> out;
    for (const SignalCall& s : signals)
      if (s.signum == signum) out.push_back(s);
    return out;
  }

  std::vector<SpawnCall> spawns;
  std::vector<SignalCall> signals;
  std::uint64_t timer = 0;
  int timer_calls = 0;
  int stopped_calls = 0;
  int fail_next = 0;  // this many upcoming spawns fail
  pid_t next_pid = 1000;
};

constexpr std::uint64_t kBase = 100;
constexpr std::uint64_t kCap = 1'000;  // 100, 200, 400, 800, then 1000
constexpr std::uint64_t kHealthy = 10'000;
constexpr std::uint64_t kGraceful = 30'000;
constexpr std::uint64_t kFast = 5'000;

SupervisorOptions options(int workers) {
  SupervisorOptions o;
  o.workers = workers;
  o.graceful_timeout_ms = kGraceful;
  o.fast_stop_timeout_ms = kFast;
  o.backoff.base_ms = kBase;
  o.backoff.cap_ms = kCap;
  o.backoff.healthy_after_ms = kHealthy;
  o.backoff.crash_loop_after = 5;
  return o;
}

class SupervisorTest : public ::testing::Test {
 protected:
  void make(int workers) { sup_ = std::make_unique<Supervisor>(ctl_, options(workers)); }

  // Starts `workers` workers at `now` and makes them all ready.
  void start_ready(int workers, std::uint64_t now) {
    make(workers);
    sup_->start(now);
    for (int i = 0; i < workers; ++i) sup_->worker_ready(ctl_.last_pid(i), now);
    ASSERT_TRUE(sup_->all_ready());
  }

  const Slot& slot(int i) const { return sup_->slots().at(static_cast<std::size_t>(i)); }

  // Makes slot i crash (exit status 1) at now, as it is.
  void crash(int i, std::uint64_t now) { sup_->worker_exited(slot(i).pid, 1, 0, now); }

  // Drives slot i (currently live, running phase) into backing_off by crashing it until it is.
  void crash_until_backing_off(int i, std::uint64_t now) {
    for (int n = 0; n < 10 && slot(i).state != SlotState::backing_off; ++n) crash(i, now);
    ASSERT_EQ(slot(i).state, SlotState::backing_off);
  }

  FakeControl ctl_;
  std::unique_ptr<Supervisor> sup_;
};

// --- start and readiness --------------------------------------------------------

TEST_F(SupervisorTest, StartSpawnsAllWorkersInGenerationOne) {
  make(3);
  EXPECT_EQ(sup_->phase(), MasterPhase::idle);
  sup_->start(500);
  EXPECT_EQ(sup_->phase(), MasterPhase::running);
  EXPECT_EQ(sup_->generation(), 1u);
  ASSERT_EQ(ctl_.spawns.size(), 3u);
  ASSERT_EQ(sup_->slots().size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(ctl_.spawns[i].slot, i);
    EXPECT_EQ(ctl_.spawns[i].generation, 1u);
    EXPECT_EQ(slot(i).state, SlotState::starting);
    EXPECT_EQ(slot(i).pid, ctl_.spawns[i].pid);
    EXPECT_EQ(slot(i).generation, 1u);
    EXPECT_EQ(slot(i).started_ms, 500u);
    EXPECT_EQ(slot(i).failures, 0u);
    EXPECT_EQ(slot(i).restarts, 0u);
  }
  EXPECT_NE(slot(0).pid, slot(1).pid);
  EXPECT_NE(slot(1).pid, slot(2).pid);
  EXPECT_EQ(sup_->live_workers(), 3u);
  EXPECT_FALSE(sup_->all_ready());
  EXPECT_EQ(ctl_.timer, 0u);
  EXPECT_TRUE(ctl_.signals.empty());
  EXPECT_EQ(ctl_.stopped_calls, 0);
}

TEST_F(SupervisorTest, SecondStartIsIgnored) {
  make(2);
  sup_->start(0);
  sup_->start(10);
  EXPECT_EQ(ctl_.spawns.size(), 2u);
  EXPECT_EQ(sup_->generation(), 1u);
  EXPECT_EQ(slot(0).started_ms, 0u);
}

TEST_F(SupervisorTest, AllReadyOnlyOnceEveryWorkerIsReady) {
  make(3);
  EXPECT_FALSE(sup_->all_ready());  // no slots at all
  sup_->start(0);
  sup_->worker_ready(ctl_.last_pid(1), 10);
  EXPECT_EQ(slot(1).state, SlotState::ready);
  EXPECT_EQ(slot(0).state, SlotState::starting);
  EXPECT_FALSE(sup_->all_ready());
  sup_->worker_ready(ctl_.last_pid(0), 20);
  EXPECT_EQ(slot(0).state, SlotState::ready);
  EXPECT_FALSE(sup_->all_ready());
  sup_->worker_ready(ctl_.last_pid(2), 30);
  EXPECT_EQ(slot(2).state, SlotState::ready);
  EXPECT_TRUE(sup_->all_ready());
  EXPECT_EQ(sup_->live_workers(), 3u);
}

TEST_F(SupervisorTest, ReadyFromUnknownPidIsIgnored) {
  make(2);
  sup_->start(0);
  sup_->worker_ready(424242, 5);
  sup_->worker_ready(0, 5);
  EXPECT_EQ(slot(0).state, SlotState::starting);
  EXPECT_EQ(slot(1).state, SlotState::starting);
  EXPECT_FALSE(sup_->all_ready());
}

TEST_F(SupervisorTest, RepeatedReadyChangesNothing) {
  make(1);
  sup_->start(0);
  sup_->worker_ready(ctl_.last_pid(0), 5);
  sup_->worker_ready(ctl_.last_pid(0), 6);
  EXPECT_EQ(slot(0).state, SlotState::ready);
  EXPECT_EQ(ctl_.spawns.size(), 1u);
  EXPECT_TRUE(sup_->all_ready());
}

// --- restarts and backoff -------------------------------------------------------

TEST_F(SupervisorTest, UnexpectedExitOfReadyWorkerRestartsAtOnce) {
  start_ready(2, 0);
  const pid_t old_pid = slot(0).pid;
  sup_->worker_exited(old_pid, 1, 0, 50);
  ASSERT_EQ(ctl_.spawns.size(), 3u);
  EXPECT_EQ(ctl_.spawns.back().slot, 0);
  EXPECT_EQ(ctl_.spawns.back().generation, 1u);
  EXPECT_EQ(slot(0).state, SlotState::starting);
  EXPECT_EQ(slot(0).pid, ctl_.spawns.back().pid);
  EXPECT_NE(slot(0).pid, old_pid);
  EXPECT_EQ(slot(0).started_ms, 50u);
  EXPECT_EQ(slot(0).failures, 1u);
  EXPECT_EQ(slot(0).restarts, 1u);
  EXPECT_EQ(ctl_.timer, 0u);  // nothing to wait for
  EXPECT_FALSE(sup_->all_ready());
  EXPECT_EQ(slot(1).state, SlotState::ready);  // the other slot is untouched
  EXPECT_EQ(ctl_.spawn_count(1), 1u);
  EXPECT_TRUE(ctl_.signals.empty());

  // The old pid is forgotten: a duplicate exit report does nothing.
  sup_->worker_exited(old_pid, 1, 0, 60);
  EXPECT_EQ(ctl_.spawns.size(), 3u);
  EXPECT_EQ(slot(0).failures, 1u);
}

TEST_F(SupervisorTest, DeathBySignalIsAnUnexpectedExitToo) {
  start_ready(1, 0);
  sup_->worker_exited(slot(0).pid, -1, SIGSEGV, 20);
  EXPECT_EQ(ctl_.spawns.size(), 2u);
  EXPECT_EQ(slot(0).state, SlotState::starting);
  EXPECT_EQ(slot(0).failures, 1u);
}

TEST_F(SupervisorTest, RepeatedQuickFailuresBackOffWithGrowingDelaysUpToCap) {
  start_ready(2, 1'000);
  std::uint64_t now = 1'000;
  crash(0, now);  // first failure: immediate
  ASSERT_EQ(slot(0).state, SlotState::starting);
  ASSERT_EQ(ctl_.spawn_count(0), 2u);

  const std::uint64_t expected[] = {100, 200, 400, 800, 1'000, 1'000, 1'000};
  unsigned failures = 1;
  for (std::uint64_t delay : expected) {
    now += 10;
    const std::size_t spawns_before = ctl_.spawn_count(0);
    crash(0, now);
    ++failures;
    SCOPED_TRACE("failure " + std::to_string(failures));
    EXPECT_EQ(slot(0).failures, failures);
    ASSERT_EQ(slot(0).state, SlotState::backing_off);
    EXPECT_EQ(slot(0).pid, 0);
    EXPECT_EQ(slot(0).restart_due_ms, now + delay);
    EXPECT_EQ(ctl_.timer, now + delay);
    EXPECT_EQ(ctl_.spawn_count(0), spawns_before);  // not restarted yet
    EXPECT_EQ(sup_->live_workers(), 1u);

    sup_->tick(now + delay - 1);  // early: nothing
    EXPECT_EQ(ctl_.spawn_count(0), spawns_before);
    EXPECT_EQ(slot(0).state, SlotState::backing_off);
    EXPECT_EQ(ctl_.timer, now + delay);

    now += delay;
    sup_->tick(now);  // due: restarted
    EXPECT_EQ(ctl_.spawn_count(0), spawns_before + 1);
    EXPECT_EQ(ctl_.spawns.back().generation, 1u);
    EXPECT_EQ(slot(0).state, SlotState::starting);
    EXPECT_EQ(slot(0).pid, ctl_.spawns.back().pid);
    EXPECT_EQ(slot(0).started_ms, now);
    EXPECT_EQ(ctl_.timer, 0u);
  }
  EXPECT_EQ(slot(0).restarts, failures);
  EXPECT_EQ(ctl_.spawn_count(1), 1u);
  EXPECT_EQ(slot(1).state, SlotState::ready);
}

TEST_F(SupervisorTest, WorkerThatCrashesBeforeReadyAlsoBacksOff) {
  make(1);
  sup_->start(0);
  crash(0, 5);  // starting, never ready
  EXPECT_EQ(slot(0).state, SlotState::starting);
  EXPECT_EQ(slot(0).failures, 1u);
  crash(0, 6);
  EXPECT_EQ(slot(0).state, SlotState::backing_off);
  EXPECT_EQ(slot(0).failures, 2u);
  EXPECT_EQ(ctl_.timer, 6 + kBase);
}

TEST_F(SupervisorTest, LateTickRestartsAllOverdueSlots) {
  start_ready(3, 0);
  crash_until_backing_off(0, 10);  // due 110
  crash_until_backing_off(2, 50);  // due 150
  EXPECT_EQ(ctl_.timer, 110u);  // the earliest
  sup_->tick(120);
  EXPECT_EQ(slot(0).state, SlotState::starting);
  EXPECT_EQ(slot(2).state, SlotState::backing_off);
  EXPECT_EQ(ctl_.timer, 150u);
  sup_->tick(1'000);
  EXPECT_EQ(slot(2).state, SlotState::starting);
  EXPECT_EQ(ctl_.timer, 0u);
}

TEST_F(SupervisorTest, HealthyWorkerCrashRestartsAtOnceAndResetsFailures) {
  start_ready(1, 0);
  std::uint64_t now = 0;
  for (int i = 0; i < 4; ++i) {  // failures 1..4
    crash(0, ++now);
    if (slot(0).state == SlotState::backing_off) {
      now = slot(0).restart_due_ms;
      sup_->tick(now);
    }
  }
  ASSERT_EQ(slot(0).failures, 4u);
  ASSERT_EQ(slot(0).state, SlotState::starting);
  const std::uint64_t started = slot(0).started_ms;
  sup_->worker_ready(slot(0).pid, started + 100);
  const std::size_t spawns_before = ctl_.spawns.size();

  crash(0, started + kHealthy);  // up for exactly healthy_after_ms
  EXPECT_EQ(slot(0).failures, 1u);
  EXPECT_EQ(slot(0).state, SlotState::starting);
  EXPECT_EQ(ctl_.spawns.size(), spawns_before + 1);
  EXPECT_EQ(ctl_.timer, 0u);
}

TEST_F(SupervisorTest, WorkerUpJustShortOfHealthyKeepsBackingOff) {
  start_ready(1, 0);
  crash(0, 10);  // failure 1, immediate
  const std::uint64_t started = slot(0).started_ms;
  sup_->worker_ready(slot(0).pid, started + 1);
  crash(0, started + kHealthy - 1);
  EXPECT_EQ(slot(0).failures, 2u);
  EXPECT_EQ(slot(0).state, SlotState::backing_off);
  EXPECT_EQ(ctl_.timer, started + kHealthy - 1 + kBase);
}

TEST_F(SupervisorTest, WorkerThatNeverBecameReadyIsNotHealthy) {
  make(1);
  sup_->start(0);
  crash(0, 1);  // failure 1
  crash(0, 1 + kHealthy * 5);  // long-lived, but never ready
  EXPECT_EQ(slot(0).failures, 2u);
  EXPECT_EQ(slot(0).state, SlotState::backing_off);
}

TEST_F(SupervisorTest, SpawnFailureIsRetriedOnceThenBacksOff) {
  make(2);
  ctl_.fail_next = 2;  // slot 0 fails twice
  sup_->start(1'000);
  ASSERT_EQ(ctl_.spawn_count(0), 2u);
  EXPECT_EQ(ctl_.spawns[0].pid, -1);
  EXPECT_EQ(ctl_.spawns[1].pid, -1);
  EXPECT_EQ(slot(0).state, SlotState::backing_off);
  EXPECT_EQ(slot(0).pid, 0);
  EXPECT_EQ(slot(0).failures, 2u);
  EXPECT_EQ(slot(0).restart_due_ms, 1'000 + kBase);
  EXPECT_EQ(ctl_.timer, 1'000 + kBase);
  EXPECT_EQ(slot(1).state, SlotState::starting);
  EXPECT_EQ(sup_->live_workers(), 1u);

  sup_->tick(1'000 + kBase - 1);
  EXPECT_EQ(ctl_.spawn_count(0), 2u);
  sup_->tick(1'000 + kBase);
  EXPECT_EQ(ctl_.spawn_count(0), 3u);
  EXPECT_EQ(slot(0).state, SlotState::starting);
  EXPECT_GT(slot(0).pid, 0);
  EXPECT_EQ(ctl_.timer, 0u);
}

TEST_F(SupervisorTest, SingleSpawnFailureIsRetriedAtOnce) {
  make(1);
  ctl_.fail_next = 1;
  sup_->start(0);
  EXPECT_EQ(ctl_.spawn_count(0), 2u);
  EXPECT_EQ(slot(0).state, SlotState::starting);
  EXPECT_GT(slot(0).pid, 0);
  EXPECT_EQ(slot(0).failures, 1u);
}

TEST_F(SupervisorTest, SpawnFailureOnRestartBacksOffFurther) {
  start_ready(1, 0);
  crash(0, 10);  // immediate restart
  crash(0, 20);  // backing off until 120
  ASSERT_EQ(ctl_.timer, 120u);
  ctl_.fail_next = 1;
  sup_->tick(120);  // the restart fails: failure 3
  EXPECT_EQ(slot(0).state, SlotState::backing_off);
  EXPECT_EQ(slot(0).failures, 3u);
  EXPECT_EQ(slot(0).restart_due_ms, 120 + 2 * kBase);
  EXPECT_EQ(ctl_.timer, 120 + 2 * kBase);
  sup_->tick(120 + 2 * kBase);
  EXPECT_EQ(slot(0).state, SlotState::starting);
}

// --- stopping -------------------------------------------------------------------

TEST_F(SupervisorTest, GracefulStopQuitsLiveWorkersAndWaitsForAllExits) {
  start_ready(3, 0);
  crash_until_backing_off(2, 100);
  const pid_t a = slot(0).pid, b = slot(1).pid;
  const std::size_t spawns_before = ctl_.spawns.size();

  sup_->stop(StopMode::graceful, 1'000);
  EXPECT_EQ(sup_->phase(), MasterPhase::draining);
  EXPECT_EQ(ctl_.signals, (std::vector<SignalCall>{{a, SIGQUIT}, {b, SIGQUIT}}));
  EXPECT_EQ(slot(2).state, SlotState::empty);  // backing-off slot cancelled
  EXPECT_EQ(ctl_.timer, 1'000 + kGraceful);
  EXPECT_EQ(ctl_.stopped_calls, 0);

  // The cancelled restart does not happen even at its old due time.
  sup_->tick(1'000 + kBase);
  EXPECT_EQ(ctl_.spawns.size(), spawns_before);

  sup_->worker_exited(a, 0, 0, 2'000);
  EXPECT_EQ(ctl_.stopped_calls, 0);
  EXPECT_EQ(slot(0).state, SlotState::empty);
  EXPECT_EQ(ctl_.spawns.size(), spawns_before);  // no restart while stopping
  EXPECT_EQ(sup_->phase(), MasterPhase::draining);
  EXPECT_EQ(ctl_.timer, 1'000 + kGraceful);

  sup_->worker_exited(b, 0, 0, 3'000);
  EXPECT_EQ(ctl_.stopped_calls, 1);
  EXPECT_EQ(sup_->phase(), MasterPhase::stopped);
  EXPECT_EQ(ctl_.timer, 0u);
  EXPECT_EQ(sup_->live_workers(), 0u);
  EXPECT_EQ(ctl_.signals.size(), 2u);  // no SIGKILL
  EXPECT_EQ(ctl_.spawns.size(), spawns_before);
}

TEST_F(SupervisorTest, GracefulStopAlsoQuitsStartingWorkers) {
  make(2);
  sup_->start(0);
  sup_->worker_ready(ctl_.last_pid(0), 1);
  sup_->stop(StopMode::graceful, 5);
  EXPECT_EQ(ctl_.signals,
            (std::vector<SignalCall>{{ctl_.last_pid(0), SIGQUIT}, {ctl_.last_pid(1), SIGQUIT}}));
  // A worker may still report ready while draining; that does not stop anything.
  sup_->worker_ready(ctl_.last_pid(1), 6);
  EXPECT_EQ(sup_->phase(), MasterPhase::draining);
  EXPECT_EQ(ctl_.stopped_calls, 0);
}

TEST_F(SupervisorTest, UnexpectedlyCrashingWorkerWhileDrainingIsNotRestarted) {
  start_ready(1, 0);
  sup_->stop(StopMode::graceful, 100);
  sup_->worker_exited(slot(0).pid, -1, SIGSEGV, 200);
  EXPECT_EQ(ctl_.spawns.size(), 1u);
  EXPECT_EQ(ctl_.stopped_calls, 1);
  EXPECT_EQ(sup_->phase(), MasterPhase::stopped);
}

TEST_F(SupervisorTest, GracefulDeadlineKillsSurvivors) {
  start_ready(3, 0);
  const pid_t a = slot(0).pid, b = slot(1).pid, c = slot(2).pid;
  sup_->stop(StopMode::graceful, 1'000);
  sup_->worker_exited(b, 0, 0, 1'500);
  ctl_.signals.clear();

  sup_->tick(1'000 + kGraceful - 1);
  EXPECT_TRUE(ctl_.signals.empty());
  EXPECT_EQ(ctl_.timer, 1'000 + kGraceful);

  sup_->tick(1'000 + kGraceful);
  EXPECT_EQ(ctl_.signals, (std::vector<SignalCall>{{a, SIGKILL}, {c, SIGKILL}}));
  EXPECT_EQ(ctl_.stopped_calls, 0);  // still waiting for the exits
  EXPECT_EQ(ctl_.timer, 0u);

  sup_->tick(1'000 + kGraceful + 10);  // no second SIGKILL round
  EXPECT_EQ(ctl_.signals.size(), 2u);

  sup_->worker_exited(a, -1, SIGKILL, 1'000 + kGraceful + 20);
  EXPECT_EQ(ctl_.stopped_calls, 0);
  sup_->worker_exited(c, -1, SIGKILL, 1'000 + kGraceful + 30);
  EXPECT_EQ(ctl_.stopped_calls, 1);
  EXPECT_EQ(sup_->phase(), MasterPhase::stopped);
}

TEST_F(SupervisorTest, FastStopTerminatesAndKillsAfterFastTimeout) {
  start_ready(2, 0);
  const pid_t a = slot(0).pid, b = slot(1).pid;
  sup_->stop(StopMode::fast, 2'000);
  EXPECT_EQ(sup_->phase(), MasterPhase::terminating);
  EXPECT_EQ(ctl_.signals, (std::vector<SignalCall>{{a, SIGTERM}, {b, SIGTERM}}));
  EXPECT_EQ(ctl_.timer, 2'000 + kFast);

  sup_->worker_exited(a, 0, 0, 2'100);
  EXPECT_EQ(ctl_.stopped_calls, 0);
  sup_->tick(2'000 + kFast - 1);
  EXPECT_EQ(ctl_.signals.size(), 2u);
  sup_->tick(2'000 + kFast);
  EXPECT_EQ(ctl_.signals.back(), (SignalCall{b, SIGKILL}));
  EXPECT_EQ(ctl_.signals_with(SIGKILL).size(), 1u);
  sup_->worker_exited(b, -1, SIGKILL, 2'000 + kFast + 1);
  EXPECT_EQ(ctl_.stopped_calls, 1);
  EXPECT_EQ(sup_->phase(), MasterPhase::stopped);
}

TEST_F(SupervisorTest, FastStopDuringGracefulEscalates) {
  start_ready(3, 0);
  const pid_t a = slot(0).pid, b = slot(1).pid, c = slot(2).pid;
  sup_->stop(StopMode::graceful, 1'000);
  sup_->worker_exited(a, 0, 0, 1'500);
  ctl_.signals.clear();

  sup_->stop(StopMode::fast, 2'000);
  EXPECT_EQ(sup_->phase(), MasterPhase::terminating);
  EXPECT_EQ(ctl_.signals, (std::vector<SignalCall>{{b, SIGTERM}, {c, SIGTERM}}));
  EXPECT_EQ(ctl_.timer, 2'000 + kFast);  // sooner than the graceful deadline
  EXPECT_EQ(ctl_.stopped_calls, 0);

  sup_->tick(2'000 + kFast);
  EXPECT_EQ(ctl_.signals_with(SIGKILL), (std::vector<SignalCall>{{b, SIGKILL}, {c, SIGKILL}}));

  // Nothing further escalates a fast stop.
  const std::size_t signals = ctl_.signals.size();
  sup_->stop(StopMode::fast, 8'000);
  sup_->stop(StopMode::graceful, 8'000);
  EXPECT_EQ(ctl_.signals.size(), signals);
  EXPECT_EQ(sup_->phase(), MasterPhase::terminating);

  sup_->worker_exited(b, -1, SIGKILL, 8'100);
  sup_->worker_exited(c, -1, SIGKILL, 8'200);
  EXPECT_EQ(ctl_.stopped_calls, 1);
}

// A fast stop late in a graceful stop must not postpone the SIGKILL deadline the
// operator was promised (graceful_timeout), nor resend SIGKILL after it.
TEST_F(SupervisorTest, FastStopNeverPostponesTheKillDeadline) {
  start_ready(2, 0);
  const pid_t a = slot(0).pid, b = slot(1).pid;
  sup_->stop(StopMode::graceful, 1'000);
  const std::uint64_t graceful_due = 1'000 + kGraceful;
  const std::uint64_t late = graceful_due - 1;  // fast stop 1 ms before the graceful deadline
  sup_->stop(StopMode::fast, late);
  EXPECT_EQ(ctl_.timer, graceful_due);
  sup_->tick(graceful_due);
  EXPECT_EQ(ctl_.signals_with(SIGKILL), (std::vector<SignalCall>{{a, SIGKILL}, {b, SIGKILL}}));
  sup_->tick(late + kFast);
  EXPECT_EQ(ctl_.signals_with(SIGKILL).size(), 2u) << "SIGKILL is sent once";
}

TEST_F(SupervisorTest, SecondGracefulStopIsIgnored) {
  start_ready(2, 0);
  sup_->stop(StopMode::graceful, 1'000);
  const std::size_t signals = ctl_.signals.size();
  sup_->stop(StopMode::graceful, 20'000);
  EXPECT_EQ(ctl_.signals.size(), signals);  // no second SIGQUIT
  EXPECT_EQ(sup_->phase(), MasterPhase::draining);
  EXPECT_EQ(ctl_.timer, 1'000 + kGraceful);  // deadline not pushed back
  sup_->tick(1'000 + kGraceful);
  EXPECT_EQ(ctl_.signals_with(SIGKILL).size(), 2u);
}

TEST_F(SupervisorTest, GracefulStopDuringFastStopIsIgnored) {
  start_ready(1, 0);
  sup_->stop(StopMode::fast, 1'000);
  sup_->stop(StopMode::graceful, 2'000);
  EXPECT_EQ(sup_->phase(), MasterPhase::terminating);
  EXPECT_EQ(ctl_.signals, (std::vector<SignalCall>{{slot(0).pid, SIGTERM}}));
  EXPECT_EQ(ctl_.timer, 1'000 + kFast);
}

TEST_F(SupervisorTest, ExitOfUnknownPidIsIgnored) {
  start_ready(2, 0);
  sup_->worker_exited(424242, 1, 0, 10);
  sup_->worker_exited(0, 1, 0, 10);
  EXPECT_EQ(ctl_.spawns.size(), 2u);
  EXPECT_EQ(slot(0).state, SlotState::ready);
  EXPECT_EQ(slot(1).state, SlotState::ready);
  EXPECT_EQ(slot(0).failures, 0u);
  EXPECT_TRUE(sup_->all_ready());

  sup_->stop(StopMode::graceful, 20);
  sup_->worker_exited(424242, 0, 0, 30);
  EXPECT_EQ(ctl_.stopped_calls, 0);
  EXPECT_EQ(sup_->live_workers(), 2u);
  EXPECT_EQ(sup_->phase(), MasterPhase::draining);
}

TEST_F(SupervisorTest, StopWithEveryWorkerBackingOffStopsAtOnce) {
  start_ready(2, 0);
  crash_until_backing_off(0, 10);
  crash_until_backing_off(1, 10);
  ASSERT_EQ(sup_->live_workers(), 0u);
  ASSERT_NE(ctl_.timer, 0u);
  const std::size_t spawns_before = ctl_.spawns.size();

  sup_->stop(StopMode::graceful, 50);
  EXPECT_EQ(ctl_.stopped_calls, 1);
  EXPECT_EQ(sup_->phase(), MasterPhase::stopped);
  EXPECT_TRUE(ctl_.signals.empty());
  EXPECT_EQ(ctl_.timer, 0u);
  EXPECT_EQ(slot(0).state, SlotState::empty);
  EXPECT_EQ(slot(1).state, SlotState::empty);

  sup_->tick(10'000);
  EXPECT_EQ(ctl_.spawns.size(), spawns_before);
  EXPECT_EQ(ctl_.stopped_calls, 1);
}

TEST_F(SupervisorTest, FastStopWithNoLiveWorkersStopsAtOnce) {
  make(1);
  ctl_.fail_next = 2;
  sup_->start(0);
  ASSERT_EQ(slot(0).state, SlotState::backing_off);
  sup_->stop(StopMode::fast, 5);
  EXPECT_EQ(ctl_.stopped_calls, 1);
  EXPECT_EQ(sup_->phase(), MasterPhase::stopped);
  EXPECT_TRUE(ctl_.signals.empty());
  EXPECT_EQ(ctl_.timer, 0u);
}

TEST_F(SupervisorTest, EventsAfterStoppedDoNothing) {
  start_ready(2, 0);
  const pid_t a = slot(0).pid, b = slot(1).pid;
  sup_->stop(StopMode::graceful, 100);
  sup_->worker_exited(a, 0, 0, 200);
  sup_->worker_exited(b, 0, 0, 300);
  ASSERT_EQ(sup_->phase(), MasterPhase::stopped);
  ASSERT_EQ(ctl_.stopped_calls, 1);
  const std::size_t spawns = ctl_.spawns.size();
  const std::size_t signals = ctl_.signals.size();

  sup_->worker_exited(a, 0, 0, 400);
  sup_->worker_exited(b, -1, SIGKILL, 400);
  sup_->worker_ready(a, 400);
  sup_->tick(100 + kGraceful);
  sup_->tick(1'000'000);
  sup_->stop(StopMode::fast, 500);
  sup_->stop(StopMode::graceful, 500);
  sup_->start(600);

  EXPECT_EQ(sup_->phase(), MasterPhase::stopped);
  EXPECT_EQ(ctl_.stopped_calls, 1);
  EXPECT_EQ(ctl_.spawns.size(), spawns);
  EXPECT_EQ(ctl_.signals.size(), signals);
  EXPECT_EQ(ctl_.timer, 0u);
  EXPECT_EQ(sup_->live_workers(), 0u);
}

// --- names ----------------------------------------------------------------------

TEST_F(SupervisorTest, PhaseAndSlotStateNames) {
  EXPECT_EQ(to_string(MasterPhase::idle), "idle");
  EXPECT_EQ(to_string(MasterPhase::running), "running");
  EXPECT_EQ(to_string(MasterPhase::draining), "draining");
  EXPECT_EQ(to_string(MasterPhase::terminating), "terminating");
  EXPECT_EQ(to_string(MasterPhase::stopped), "stopped");
  EXPECT_EQ(to_string(SlotState::empty), "empty");
  EXPECT_EQ(to_string(SlotState::starting), "starting");
  EXPECT_EQ(to_string(SlotState::ready), "ready");
  EXPECT_EQ(to_string(SlotState::backing_off), "backing-off");
}

}  // namespace
}  // namespace preforkd
