// The supervisor state machine (generations, reloads, scaling, timeouts, stop),
// driven through SupervisorDriver with a fake I/O layer that records every effect
// and a fake clock.
#include "master/supervisor.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tests/unit/supervisor_driver.hpp"

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

struct RetireCall {
  pid_t pid;
  bool successor;
  bool operator==(const RetireCall&) const = default;
};

struct ServingCall {
  unsigned generation;
  int slots;
  bool operator==(const ServingCall&) const = default;
};

class FakeControl : public FakeIo {
 public:
  int prepare_generation(unsigned generation) override {
    prepared.push_back(generation);
    log("prepare " + std::to_string(generation));
    return count;
  }
  pid_t spawn(int slot, unsigned generation) override {
    pid_t pid = -1;
    if (slot == fail_slot && generation == fail_generation) {
      // fails
    } else if (fail_next > 0) {
      --fail_next;
    } else {
      pid = next_pid++;
    }
    spawns.push_back({slot, generation, pid});
    log("spawn " + std::to_string(slot) + " " + std::to_string(generation) + " " + std::to_string(pid));
    return pid;
  }
  void signal(pid_t pid, int signum) override {
    signals.push_back({pid, signum});
    log("signal " + std::to_string(pid) + " " + std::to_string(signum));
  }
  void retire(pid_t pid, bool successor) override {
    retires.push_back({pid, successor});
    log("retire " + std::to_string(pid) + " " + (successor ? "1" : "0"));
  }
  void serving(unsigned generation, int slots) override {
    servings.push_back({generation, slots});
    log("serving " + std::to_string(generation) + " " + std::to_string(slots));
  }
  void generation_gone(unsigned generation) override {
    gone_generations.push_back(generation);
    log("generation_gone " + std::to_string(generation));
  }
  void worker_gone(pid_t pid) override {
    gone_workers.push_back(pid);
    log("worker_gone " + std::to_string(pid));
  }
  void set_timer(std::uint64_t due_ms) override {
    timer = due_ms;
    ++timer_calls;
  }
  void all_stopped() override {
    ++stopped_calls;
    log("all_stopped");
  }

  // Pids of the successful spawns of a generation, in spawn order.
  std::vector<pid_t> pids_of(unsigned generation) const {
    std::vector<pid_t> out;
    for (const SpawnCall& s : spawns)
      if (s.generation == generation && s.pid > 0) out.push_back(s.pid);
    return out;
  }
  // pid of the most recent successful spawn for slot (any generation), or -1.
  pid_t last_pid(int slot) const {
    for (auto it = spawns.rbegin(); it != spawns.rend(); ++it)
      if (it->slot == slot && it->pid > 0) return it->pid;
    return -1;
  }
  std::vector<SignalCall> signals_with(int signum) const {
    std::vector<SignalCall> out;
    for (const SignalCall& s : signals)
      if (s.signum == signum) out.push_back(s);
    return out;
  }
  std::size_t signal_count(pid_t pid, int signum) const {
    return static_cast<std::size_t>(std::count(signals.begin(), signals.end(), SignalCall{pid, signum}));
  }
  // Position of an exact event in the call log, or -1.
  int index_of(const std::string& event) const {
    auto it = std::find(events.begin(), events.end(), event);
    return it == events.end() ? -1 : static_cast<int>(it - events.begin());
  }
  void clear() {
    events.clear();
    prepared.clear();
    spawns.clear();
    signals.clear();
    retires.clear();
    servings.clear();
    gone_generations.clear();
    gone_workers.clear();
    stopped_calls = 0;
  }

  int count = 3;      // what prepare_generation returns (0 = invalid configuration)
  int fail_next = 0;  // this many upcoming spawns fail
  int fail_slot = -1;  // every spawn of this slot in fail_generation fails
  unsigned fail_generation = 0;
  pid_t next_pid = 1000;

  std::vector<std::string> events;  // every call but set_timer, in order
  std::vector<unsigned> prepared;
  std::vector<SpawnCall> spawns;
  std::vector<SignalCall> signals;
  std::vector<RetireCall> retires;
  std::vector<ServingCall> servings;
  std::vector<unsigned> gone_generations;
  std::vector<pid_t> gone_workers;
  std::uint64_t timer = 0;
  int timer_calls = 0;
  int stopped_calls = 0;

 private:
  void log(std::string event) { events.push_back(std::move(event)); }
};

constexpr std::uint64_t kBase = 100;
constexpr std::uint64_t kCap = 1'000;  // 100, 200, 400, 800, then 1000
constexpr std::uint64_t kHealthy = 10'000;
constexpr std::uint64_t kGraceful = 30'000;
constexpr std::uint64_t kFast = 5'000;
constexpr std::uint64_t kStartTimeout = 10'000;
constexpr std::uint64_t kWorkerTimeout = 60'000;

SupervisorOptions options() {
  SupervisorOptions o;
  o.graceful_timeout_ms = kGraceful;
  o.fast_stop_timeout_ms = kFast;
  o.start_timeout_ms = kStartTimeout;
  o.worker_timeout_ms = kWorkerTimeout;
  // Steering away from a silent worker has its own tests (supervisor_effects_test).
  o.unresponsive_after_ms = kWorkerTimeout;
  o.backoff.base_ms = kBase;
  o.backoff.cap_ms = kCap;
  o.backoff.healthy_after_ms = kHealthy;
  o.backoff.crash_loop_after = 5;
  return o;
}

std::string ev(const char* what, long long a) { return std::string(what) + " " + std::to_string(a); }
std::string ev(const char* what, long long a, long long b) { return ev(what, a) + " " + std::to_string(b); }

class SupervisorTest : public ::testing::Test {
 protected:
  SupervisorTest() : sup_(ctl_, options()) {}

  // Starts generation 1 with `workers` workers at `now` and makes them all ready.
  void start_ready(int workers, std::uint64_t now) {
    ctl_.count = workers;
    ASSERT_TRUE(sup_.start(now));
    for (pid_t pid : ctl_.pids_of(1)) sup_.worker_ready(pid, now);
    for (const auto& [pid, w] : sup_.workers()) ASSERT_EQ(w.state, WorkerState::ready);
  }

  // Reloads at `now` into a generation of `workers` workers; returns its number.
  unsigned reload(int workers, std::uint64_t now) {
    ctl_.count = workers;
    sup_.reload(now);
    return sup_.starting_generation();
  }

  // Makes every worker of generation ready at `now`.
  void ready_all(unsigned generation, std::uint64_t now) {
    std::vector<pid_t> pids;
    for (const auto& [pid, w] : sup_.workers())
      if (w.generation == generation) pids.push_back(pid);
    for (pid_t pid : pids) sup_.worker_ready(pid, now);
  }

  const SlotInfo& slot(int i) const { return sup_.slots().at(static_cast<std::size_t>(i)); }
  const WorkerInfo& worker(pid_t pid) const { return sup_.workers().at(pid); }
  bool alive(pid_t pid) const { return sup_.workers().count(pid) != 0; }

  FakeControl ctl_;
  SupervisorDriver sup_;
};

// --- start -----------------------------------------------------------------------

TEST_F(SupervisorTest, StartSpawnsGenerationOneAndServesIt) {
  ctl_.count = 3;
  EXPECT_EQ(sup_.phase(), MasterPhase::idle);
  ASSERT_TRUE(sup_.start(500));
  EXPECT_EQ(sup_.phase(), MasterPhase::running);
  EXPECT_EQ(sup_.serving_generation(), 1u);
  EXPECT_EQ(sup_.starting_generation(), 0u);
  EXPECT_EQ(ctl_.prepared, std::vector<unsigned>{1});
  EXPECT_EQ(ctl_.servings, (std::vector<ServingCall>{{1, 3}}));
  ASSERT_EQ(ctl_.spawns.size(), 3u);
  ASSERT_EQ(sup_.slots().size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(ctl_.spawns[i].slot, i);
    EXPECT_EQ(ctl_.spawns[i].generation, 1u);
    EXPECT_EQ(slot(i).pid, ctl_.spawns[i].pid);
    const WorkerInfo& w = worker(ctl_.spawns[i].pid);
    EXPECT_EQ(w.slot, i);
    EXPECT_EQ(w.generation, 1u);
    EXPECT_EQ(w.state, WorkerState::starting);
    EXPECT_EQ(w.started_ms, 500u);
  }
  // A starting worker must be ready within the start timeout.
  EXPECT_EQ(ctl_.timer, 500 + kStartTimeout);
  EXPECT_TRUE(ctl_.signals.empty());
  EXPECT_TRUE(ctl_.retires.empty());
  EXPECT_EQ(ctl_.stopped_calls, 0);
}

TEST_F(SupervisorTest, StartWithInvalidConfigurationFails) {
  ctl_.count = 0;
  EXPECT_FALSE(sup_.start(0));
  EXPECT_EQ(sup_.phase(), MasterPhase::idle);
  EXPECT_TRUE(ctl_.spawns.empty());
  EXPECT_TRUE(ctl_.servings.empty());
  EXPECT_TRUE(sup_.slots().empty());
}

TEST_F(SupervisorTest, SecondStartIsRefused) {
  start_ready(2, 0);
  EXPECT_FALSE(sup_.start(10));
  EXPECT_EQ(ctl_.spawns.size(), 2u);
  EXPECT_EQ(ctl_.prepared.size(), 1u);
  EXPECT_EQ(sup_.serving_generation(), 1u);
}

TEST_F(SupervisorTest, ReadyAndHeartbeatArmTheWorkerTimeout) {
  ctl_.count = 1;
  sup_.start(0);
  const pid_t pid = slot(0).pid;
  sup_.worker_ready(pid, 40);
  EXPECT_EQ(worker(pid).state, WorkerState::ready);
  EXPECT_EQ(worker(pid).last_seen_ms, 40u);
  EXPECT_EQ(ctl_.timer, 40 + kWorkerTimeout);
  sup_.worker_heartbeat(pid, 1'000);
  EXPECT_EQ(worker(pid).last_seen_ms, 1'000u);
  sup_.tick(1'000);
  EXPECT_EQ(ctl_.timer, 1'000 + kWorkerTimeout);
}

TEST_F(SupervisorTest, UnknownPidsAreIgnored) {
  start_ready(2, 0);
  ctl_.clear();
  sup_.worker_ready(424242, 5);
  sup_.worker_heartbeat(424242, 5);
  sup_.worker_exited(424242, 1, 0, 5);
  EXPECT_TRUE(ctl_.events.empty());
  EXPECT_EQ(sup_.workers().size(), 2u);
}

TEST_F(SupervisorTest, StartRetriesASlotWhoseSpawnFailed) {
  ctl_.count = 2;
  ctl_.fail_next = 1;  // slot 0's first spawn fails, the immediate retry succeeds
  ASSERT_TRUE(sup_.start(0));
  ASSERT_EQ(ctl_.spawns.size(), 3u);
  EXPECT_EQ(ctl_.spawns[0].pid, -1);
  // The retry is asked for once the failure is known, after slot 1's spawn.
  EXPECT_EQ(ctl_.spawns[1].slot, 1);
  EXPECT_EQ(ctl_.spawns[2].slot, 0);
  EXPECT_GT(ctl_.spawns[2].pid, 0);
  EXPECT_EQ(slot(0).pid, ctl_.spawns[2].pid);
  EXPECT_EQ(slot(0).failures, 1u);
  EXPECT_GT(slot(1).pid, 0);
}

TEST_F(SupervisorTest, RepeatedSpawnFailureBacksOff) {
  ctl_.count = 1;
  ctl_.fail_next = 2;
  ASSERT_TRUE(sup_.start(0));
  EXPECT_EQ(ctl_.spawns.size(), 2u);
  EXPECT_EQ(slot(0).pid, 0);
  EXPECT_EQ(slot(0).failures, 2u);
  EXPECT_EQ(slot(0).restart_due_ms, kBase);
  EXPECT_EQ(ctl_.timer, kBase);
  sup_.tick(kBase);
  ASSERT_EQ(ctl_.spawns.size(), 3u);
  EXPECT_GT(slot(0).pid, 0);
}

// --- crashes and backoff -----------------------------------------------------------

TEST_F(SupervisorTest, FirstCrashOfServingWorkerRestartsAtOnce) {
  start_ready(2, 0);
  const pid_t old = slot(0).pid;
  ctl_.clear();
  sup_.worker_exited(old, 1, 0, 50);
  EXPECT_EQ(ctl_.gone_workers, std::vector<pid_t>{old});
  ASSERT_EQ(ctl_.spawns.size(), 1u);
  EXPECT_EQ(ctl_.spawns[0].slot, 0);
  EXPECT_EQ(ctl_.spawns[0].generation, 1u);
  EXPECT_EQ(slot(0).pid, ctl_.spawns[0].pid);
  EXPECT_EQ(slot(0).failures, 1u);
  EXPECT_EQ(slot(0).restarts, 1u);
  EXPECT_FALSE(alive(old));
  // worker_gone is reported before the replacement is spawned.
  EXPECT_LT(ctl_.index_of(ev("worker_gone", old)), ctl_.index_of(ev("spawn 0 1", ctl_.spawns[0].pid)));
  EXPECT_TRUE(ctl_.gone_generations.empty());
  EXPECT_TRUE(ctl_.servings.empty());
  EXPECT_EQ(sup_.phase(), MasterPhase::running);
}

TEST_F(SupervisorTest, QuickRepeatedCrashesBackOffExponentially) {
  ctl_.count = 1;
  sup_.start(0);
  std::uint64_t now = 10;
  sup_.worker_exited(slot(0).pid, 1, 0, now);  // 1st failure: immediate
  ASSERT_EQ(ctl_.spawns.size(), 2u);
  EXPECT_GT(slot(0).pid, 0);

  const std::uint64_t expected[] = {100, 200, 400, 800, 1'000, 1'000};
  std::size_t spawns = 2;
  for (std::uint64_t delay : expected) {
    now += 5;
    sup_.worker_exited(slot(0).pid, 1, 0, now);
    EXPECT_EQ(slot(0).pid, 0) << "delay " << delay;
    EXPECT_EQ(slot(0).restart_due_ms, now + delay);
    EXPECT_EQ(ctl_.timer, now + delay);
    EXPECT_EQ(ctl_.spawns.size(), spawns);
    sup_.tick(now + delay - 1);  // not yet due
    EXPECT_EQ(ctl_.spawns.size(), spawns);
    EXPECT_EQ(slot(0).pid, 0);
    now += delay;
    sup_.tick(now);
    ASSERT_EQ(ctl_.spawns.size(), ++spawns);
    EXPECT_EQ(ctl_.spawns.back().slot, 0);
    EXPECT_EQ(ctl_.spawns.back().generation, 1u);
    EXPECT_EQ(slot(0).pid, ctl_.spawns.back().pid);
  }
  EXPECT_EQ(slot(0).failures, 7u);
  EXPECT_EQ(slot(0).restarts, 7u);
}

TEST_F(SupervisorTest, CrashOfAWorkerNeverReadyIsNotHealthy) {
  ctl_.count = 1;
  sup_.start(0);
  sup_.worker_exited(slot(0).pid, 1, 0, 1);  // immediate
  // Up for longer than healthy_after, but never ready: still a failure.
  sup_.worker_exited(slot(0).pid, 1, 0, 1 + kHealthy + 1);
  EXPECT_EQ(slot(0).pid, 0);
  EXPECT_EQ(slot(0).failures, 2u);
}

TEST_F(SupervisorTest, HealthyWorkerResetsBackoff) {
  ctl_.count = 1;
  sup_.start(0);
  sup_.worker_exited(slot(0).pid, 1, 0, 1);
  sup_.worker_exited(slot(0).pid, 1, 0, 2);
  sup_.tick(2 + kBase);
  sup_.worker_exited(slot(0).pid, 1, 0, 2 + kBase);
  EXPECT_EQ(slot(0).failures, 3u);
  const std::uint64_t t = 2 + kBase + 2 * kBase;
  sup_.tick(t);
  const pid_t pid = slot(0).pid;
  ASSERT_GT(pid, 0);
  sup_.worker_ready(pid, t + 10);
  const std::size_t spawns = ctl_.spawns.size();
  // Up (and ready) for healthy_after: the next crash restarts at once.
  sup_.worker_exited(pid, 0, SIGKILL, t + kHealthy);
  EXPECT_EQ(slot(0).failures, 1u);
  ASSERT_EQ(ctl_.spawns.size(), spawns + 1);
  EXPECT_EQ(slot(0).pid, ctl_.spawns.back().pid);
  // And a quick crash after that backs off from the base again.
  sup_.worker_exited(slot(0).pid, 1, 0, t + kHealthy + 5);
  EXPECT_EQ(slot(0).failures, 2u);
  EXPECT_EQ(slot(0).restart_due_ms, t + kHealthy + 5 + kBase);
}

TEST_F(SupervisorTest, CrashesOfDifferentSlotsAreIndependent) {
  start_ready(2, 0);
  sup_.worker_exited(slot(0).pid, 1, 0, 10);
  sup_.worker_exited(slot(0).pid, 1, 0, 20);  // slot 0 backs off
  EXPECT_EQ(slot(0).pid, 0);
  sup_.worker_exited(slot(1).pid, 1, 0, 30);  // slot 1's first: immediate
  EXPECT_GT(slot(1).pid, 0);
  EXPECT_EQ(slot(1).failures, 1u);
  EXPECT_EQ(ctl_.timer, 20 + kBase);
}

// --- reload ------------------------------------------------------------------------

TEST_F(SupervisorTest, ReloadStartsNewGenerationAndPromotesWhenAllReady) {
  start_ready(3, 0);
  const std::vector<pid_t> old = ctl_.pids_of(1);
  ctl_.clear();

  EXPECT_EQ(reload(3, 100), 2u);
  EXPECT_EQ(sup_.phase(), MasterPhase::reloading);
  EXPECT_EQ(sup_.serving_generation(), 1u);
  EXPECT_EQ(ctl_.prepared, std::vector<unsigned>{2});
  const std::vector<pid_t> fresh = ctl_.pids_of(2);
  ASSERT_EQ(fresh.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(ctl_.spawns[i].slot, i);
    EXPECT_EQ(worker(fresh[i]).generation, 2u);
    EXPECT_EQ(worker(fresh[i]).state, WorkerState::starting);
  }
  EXPECT_EQ(ctl_.timer, 100 + kStartTimeout);

  // Old workers are untouched until every new one is ready.
  sup_.worker_ready(fresh[0], 200);
  sup_.worker_ready(fresh[2], 300);
  EXPECT_EQ(sup_.phase(), MasterPhase::reloading);
  EXPECT_TRUE(ctl_.retires.empty());
  EXPECT_TRUE(ctl_.signals.empty());
  EXPECT_TRUE(ctl_.servings.empty());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(slot(i).pid, old[i]);

  sup_.worker_ready(fresh[1], 400);
  EXPECT_EQ(sup_.phase(), MasterPhase::running);
  EXPECT_EQ(sup_.serving_generation(), 2u);
  EXPECT_EQ(sup_.starting_generation(), 0u);
  EXPECT_EQ(sup_.reloads_ok(), 1u);
  EXPECT_EQ(sup_.reloads_failed(), 0u);
  EXPECT_EQ(ctl_.servings, (std::vector<ServingCall>{{2, 3}}));
  ASSERT_EQ(ctl_.retires.size(), 3u);
  const int serving_at = ctl_.index_of("serving 2 3");
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(slot(i).pid, fresh[i]);
    EXPECT_EQ(worker(old[i]).state, WorkerState::retiring);
    EXPECT_EQ(worker(old[i]).kill_due_ms, 400 + kGraceful);
    const int retire_at = ctl_.index_of(ev("retire", old[i], 1));
    ASSERT_GE(retire_at, 0) << "slot " << i;
    EXPECT_LT(serving_at, retire_at) << "serving must come before retire";
  }
  EXPECT_TRUE(ctl_.signals.empty());
  EXPECT_TRUE(ctl_.gone_generations.empty());

  // Old workers exit; generation 1 is gone once the last one has; nothing is restarted.
  const std::size_t spawns = ctl_.spawns.size();
  sup_.worker_exited(old[0], 0, 0, 500);
  sup_.worker_exited(old[2], 0, 0, 600);
  EXPECT_TRUE(ctl_.gone_generations.empty());
  sup_.worker_exited(old[1], 0, 0, 700);
  EXPECT_EQ(ctl_.gone_generations, std::vector<unsigned>{1});
  EXPECT_EQ(ctl_.spawns.size(), spawns);
  EXPECT_EQ(sup_.workers().size(), 3u);
  EXPECT_LT(ctl_.index_of(ev("worker_gone", old[1])), ctl_.index_of("generation_gone 1"));
}

TEST_F(SupervisorTest, ReloadThatShrinksRetiresExtraSlotsWithoutSuccessor) {
  start_ready(3, 0);
  const std::vector<pid_t> old = ctl_.pids_of(1);
  ctl_.clear();
  reload(2, 100);
  ASSERT_EQ(ctl_.spawns.size(), 2u);
  ready_all(2, 200);
  EXPECT_EQ(sup_.serving_generation(), 2u);
  EXPECT_EQ(sup_.slots().size(), 2u);
  EXPECT_EQ(ctl_.servings, (std::vector<ServingCall>{{2, 2}}));
  const int serving_at = ctl_.index_of("serving 2 2");
  const int r0 = ctl_.index_of(ev("retire", old[0], 1));
  const int r1 = ctl_.index_of(ev("retire", old[1], 1));
  const int r2 = ctl_.index_of(ev("retire", old[2], 0));
  ASSERT_GE(r0, 0);
  ASSERT_GE(r1, 0);
  ASSERT_GE(r2, 0);  // slot 2 has no successor
  EXPECT_LT(serving_at, r0);
  EXPECT_LT(serving_at, r1);
  EXPECT_LT(serving_at, r2);
  EXPECT_EQ(ctl_.retires.size(), 3u);
}

TEST_F(SupervisorTest, ReloadThatGrowsRetiresEveryOldSlotWithSuccessor) {
  start_ready(2, 0);
  const std::vector<pid_t> old = ctl_.pids_of(1);
  ctl_.clear();
  reload(4, 100);
  ASSERT_EQ(ctl_.spawns.size(), 4u);
  ready_all(2, 200);
  EXPECT_EQ(ctl_.servings, (std::vector<ServingCall>{{2, 4}}));
  EXPECT_EQ(ctl_.retires, (std::vector<RetireCall>{{old[0], true}, {old[1], true}}));
  EXPECT_EQ(sup_.slots().size(), 4u);
}

TEST_F(SupervisorTest, OldWorkersAreKilledAtTheGracefulDeadline) {
  start_ready(2, 0);
  const std::vector<pid_t> old = ctl_.pids_of(1);
  reload(2, 100);
  ready_all(2, 1'000);
  ASSERT_EQ(sup_.serving_generation(), 2u);
  EXPECT_EQ(ctl_.timer, 1'000 + kGraceful);
  sup_.worker_exited(old[0], 0, 0, 2'000);  // drained in time
  ctl_.clear();

  sup_.tick(1'000 + kGraceful - 1);
  EXPECT_TRUE(ctl_.signals.empty());
  sup_.tick(1'000 + kGraceful);
  EXPECT_EQ(ctl_.signals, (std::vector<SignalCall>{{old[1], SIGKILL}}));
  EXPECT_TRUE(worker(old[1]).killed);
  sup_.tick(1'000 + kGraceful + 5'000);
  EXPECT_EQ(ctl_.signals.size(), 1u) << "SIGKILL is sent once";
  EXPECT_TRUE(ctl_.gone_generations.empty());

  sup_.worker_exited(old[1], -1, SIGKILL, 1'000 + kGraceful + 6'000);
  EXPECT_EQ(ctl_.gone_generations, std::vector<unsigned>{1});
  EXPECT_TRUE(ctl_.spawns.empty());  // an expected exit: no restart
  EXPECT_EQ(sup_.phase(), MasterPhase::running);
}

TEST_F(SupervisorTest, ReloadWithInvalidConfigurationChangesNothing) {
  start_ready(2, 0);
  ctl_.clear();
  reload(0, 100);
  EXPECT_EQ(ctl_.prepared.size(), 1u);
  EXPECT_EQ(ctl_.events.size(), 1u);  // the prepare, nothing else
  EXPECT_EQ(sup_.phase(), MasterPhase::running);
  EXPECT_EQ(sup_.serving_generation(), 1u);
  EXPECT_EQ(sup_.starting_generation(), 0u);
  EXPECT_EQ(sup_.reloads_failed(), 1u);
  EXPECT_EQ(sup_.reloads_ok(), 0u);
  EXPECT_EQ(sup_.workers().size(), 2u);

  // The next (valid) reload works.
  const unsigned next = reload(2, 200);
  EXPECT_GT(next, 1u);
  EXPECT_EQ(sup_.phase(), MasterPhase::reloading);
  ready_all(next, 300);
  EXPECT_EQ(sup_.serving_generation(), next);
  EXPECT_EQ(sup_.reloads_ok(), 1u);
  EXPECT_EQ(sup_.reloads_failed(), 1u);
}

TEST_F(SupervisorTest, NewWorkerExitingDuringStartAbandonsTheReload) {
  start_ready(3, 0);
  const std::vector<pid_t> old = ctl_.pids_of(1);
  reload(3, 100);
  const std::vector<pid_t> fresh = ctl_.pids_of(2);
  sup_.worker_ready(fresh[0], 150);
  ctl_.clear();

  sup_.worker_exited(fresh[1], 78, 0, 200);
  EXPECT_EQ(sup_.phase(), MasterPhase::running);
  EXPECT_EQ(sup_.serving_generation(), 1u);
  EXPECT_EQ(sup_.starting_generation(), 0u);
  EXPECT_EQ(sup_.reloads_failed(), 1u);
  EXPECT_EQ(sup_.reloads_ok(), 0u);
  // The remaining new workers are killed, the exited one is not signalled.
  EXPECT_EQ(ctl_.signal_count(fresh[0], SIGKILL), 1u);
  EXPECT_EQ(ctl_.signal_count(fresh[2], SIGKILL), 1u);
  EXPECT_EQ(ctl_.signals.size(), 2u);
  // The old generation keeps serving, untouched.
  EXPECT_TRUE(ctl_.retires.empty());
  EXPECT_TRUE(ctl_.servings.empty());
  EXPECT_TRUE(ctl_.spawns.empty());
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(slot(i).pid, old[i]);
    EXPECT_EQ(worker(old[i]).state, WorkerState::ready);
  }
  // A late ready from an abandoned worker does not promote anything.
  sup_.worker_ready(fresh[2], 250);
  EXPECT_EQ(sup_.serving_generation(), 1u);
  EXPECT_TRUE(ctl_.retires.empty());

  EXPECT_TRUE(ctl_.gone_generations.empty());
  sup_.worker_exited(fresh[0], -1, SIGKILL, 300);
  sup_.worker_exited(fresh[2], -1, SIGKILL, 300);
  EXPECT_EQ(ctl_.gone_generations, std::vector<unsigned>{2});
  EXPECT_TRUE(ctl_.spawns.empty());  // killed abandoned workers are not restarted

  // Old workers still restart like before.
  sup_.worker_exited(old[1], 1, 0, 20'000);
  ASSERT_EQ(ctl_.spawns.size(), 1u);
  EXPECT_EQ(ctl_.spawns[0].generation, 1u);
  EXPECT_EQ(ctl_.spawns[0].slot, 1);
}

TEST_F(SupervisorTest, SpawnFailureDuringReloadAbandonsIt) {
  start_ready(2, 0);
  ctl_.clear();
  ctl_.fail_slot = 2;
  ctl_.fail_generation = 2;
  reload(3, 100);
  EXPECT_EQ(sup_.phase(), MasterPhase::running);
  EXPECT_EQ(sup_.serving_generation(), 1u);
  EXPECT_EQ(sup_.starting_generation(), 0u);
  EXPECT_EQ(sup_.reloads_failed(), 1u);
  ASSERT_EQ(ctl_.spawns.size(), 3u);  // no retry within a reload
  const std::vector<pid_t> fresh = ctl_.pids_of(2);
  ASSERT_EQ(fresh.size(), 2u);
  EXPECT_EQ(ctl_.signals, (std::vector<SignalCall>{{fresh[0], SIGKILL}, {fresh[1], SIGKILL}}));
  EXPECT_TRUE(ctl_.retires.empty());
  EXPECT_TRUE(ctl_.servings.empty());
  EXPECT_TRUE(ctl_.gone_generations.empty());
  for (pid_t pid : fresh) sup_.worker_exited(pid, -1, SIGKILL, 200);
  EXPECT_EQ(ctl_.gone_generations, std::vector<unsigned>{2});
  EXPECT_EQ(ctl_.spawns.size(), 3u);
}

TEST_F(SupervisorTest, FirstSpawnFailureDuringReloadMakesTheGenerationGoneAtOnce) {
  start_ready(2, 0);
  ctl_.clear();
  ctl_.fail_next = 1;
  reload(2, 100);
  EXPECT_EQ(sup_.phase(), MasterPhase::running);
  EXPECT_EQ(sup_.reloads_failed(), 1u);
  EXPECT_EQ(ctl_.spawns.size(), 1u);
  EXPECT_TRUE(ctl_.signals.empty());
  EXPECT_EQ(ctl_.gone_generations, std::vector<unsigned>{2});
}

TEST_F(SupervisorTest, StartTimeoutAbandonsTheReload) {
  start_ready(3, 0);
  const std::vector<pid_t> old = ctl_.pids_of(1);
  for (pid_t pid : old) sup_.worker_heartbeat(pid, 100);
  reload(3, 100);
  const std::vector<pid_t> fresh = ctl_.pids_of(2);
  sup_.worker_ready(fresh[0], 200);
  sup_.worker_ready(fresh[1], 300);
  EXPECT_EQ(ctl_.timer, 100 + kStartTimeout);
  ctl_.clear();

  sup_.tick(100 + kStartTimeout - 1);
  EXPECT_TRUE(ctl_.events.empty());
  EXPECT_EQ(sup_.phase(), MasterPhase::reloading);

  sup_.tick(100 + kStartTimeout);
  EXPECT_EQ(sup_.phase(), MasterPhase::running);
  EXPECT_EQ(sup_.serving_generation(), 1u);
  EXPECT_EQ(sup_.reloads_failed(), 1u);
  for (pid_t pid : fresh) EXPECT_EQ(ctl_.signal_count(pid, SIGKILL), 1u);
  EXPECT_EQ(ctl_.signals.size(), 3u);
  EXPECT_TRUE(ctl_.retires.empty());
  EXPECT_TRUE(ctl_.servings.empty());

  // The last one's late ready changes nothing.
  sup_.worker_ready(fresh[2], 100 + kStartTimeout + 1);
  EXPECT_EQ(sup_.serving_generation(), 1u);
  EXPECT_TRUE(ctl_.retires.empty());
  for (pid_t pid : fresh) sup_.worker_exited(pid, -1, SIGKILL, 100 + kStartTimeout + 2);
  EXPECT_EQ(ctl_.gone_generations, std::vector<unsigned>{2});
  EXPECT_TRUE(ctl_.spawns.empty());
}

TEST_F(SupervisorTest, OldWorkerCrashDuringReloadIsRestartedInOldGeneration) {
  start_ready(2, 0);
  const std::vector<pid_t> old = ctl_.pids_of(1);
  reload(2, 100);
  ctl_.clear();
  sup_.worker_exited(old[0], 1, 0, 20'000);
  ASSERT_EQ(ctl_.spawns.size(), 1u);
  EXPECT_EQ(ctl_.spawns[0].generation, 1u);
  EXPECT_EQ(ctl_.spawns[0].slot, 0);
  EXPECT_EQ(sup_.phase(), MasterPhase::reloading);
  // The replacement is retired like the others on promotion (it was never ready).
  const pid_t replacement = ctl_.spawns[0].pid;
  ready_all(2, 20'100);
  EXPECT_EQ(sup_.serving_generation(), 2u);
  EXPECT_EQ(worker(replacement).state, WorkerState::retiring);
  EXPECT_GE(ctl_.index_of(ev("retire", replacement, 1)), 0);
  EXPECT_GE(ctl_.index_of(ev("retire", old[1], 1)), 0);
}

TEST_F(SupervisorTest, ReloadDuringReloadIsRememberedAndStartedAfterPromotion) {
  start_ready(2, 0);
  reload(2, 100);
  ASSERT_EQ(sup_.starting_generation(), 2u);
  sup_.reload(110);
  sup_.reload(120);
  sup_.reload(130);
  EXPECT_TRUE(sup_.reload_pending());
  EXPECT_EQ(ctl_.prepared, (std::vector<unsigned>{1, 2}));
  EXPECT_EQ(ctl_.pids_of(2).size(), 2u);
  EXPECT_EQ(sup_.starting_generation(), 2u);

  const std::vector<pid_t> gen2 = ctl_.pids_of(2);
  ready_all(2, 200);
  // Promotion of 2, then straight into 3: several requests made one reload.
  EXPECT_EQ(sup_.serving_generation(), 2u);
  EXPECT_EQ(sup_.reloads_ok(), 1u);
  EXPECT_FALSE(sup_.reload_pending());
  EXPECT_EQ(sup_.phase(), MasterPhase::reloading);
  EXPECT_EQ(sup_.starting_generation(), 3u);
  EXPECT_EQ(ctl_.prepared, (std::vector<unsigned>{1, 2, 3}));
  EXPECT_EQ(ctl_.pids_of(3).size(), 2u);
  EXPECT_LT(ctl_.index_of("serving 2 2"), ctl_.index_of("prepare 3"));

  ready_all(3, 300);
  EXPECT_EQ(sup_.serving_generation(), 3u);
  EXPECT_EQ(sup_.reloads_ok(), 2u);
  EXPECT_EQ(sup_.phase(), MasterPhase::running);
  EXPECT_EQ(ctl_.prepared.size(), 3u);  // no fourth generation
  for (pid_t pid : gen2) EXPECT_EQ(worker(pid).state, WorkerState::retiring);
}

TEST_F(SupervisorTest, PendingReloadStartsAfterAnAbandonedOne) {
  start_ready(2, 0);
  reload(2, 100);
  sup_.reload(110);
  ASSERT_TRUE(sup_.reload_pending());
  const std::vector<pid_t> fresh = ctl_.pids_of(2);
  ASSERT_EQ(fresh.size(), 2u);
  sup_.worker_exited(fresh[0], 1, 0, 200);
  EXPECT_EQ(sup_.reloads_failed(), 1u);
  EXPECT_FALSE(sup_.reload_pending());
  EXPECT_EQ(sup_.phase(), MasterPhase::reloading);
  EXPECT_EQ(sup_.starting_generation(), 3u);
  EXPECT_EQ(sup_.serving_generation(), 1u);
  ready_all(3, 300);
  EXPECT_EQ(sup_.serving_generation(), 3u);
}

TEST_F(SupervisorTest, ReloadBeforeStartIsIgnored) {
  sup_.reload(0);
  EXPECT_TRUE(ctl_.events.empty());
  EXPECT_EQ(sup_.phase(), MasterPhase::idle);
}

// --- scaling -----------------------------------------------------------------------

TEST_F(SupervisorTest, ScaleUpAddsTheNextSlot) {
  start_ready(2, 0);
  ctl_.clear();
  sup_.scale(+1, 100);
  EXPECT_EQ(sup_.slots().size(), 3u);
  EXPECT_EQ(ctl_.servings, (std::vector<ServingCall>{{1, 3}}));
  ASSERT_EQ(ctl_.spawns.size(), 1u);
  EXPECT_EQ(ctl_.spawns[0].slot, 2);
  EXPECT_EQ(ctl_.spawns[0].generation, 1u);
  EXPECT_EQ(slot(2).pid, ctl_.spawns[0].pid);
  EXPECT_LT(ctl_.index_of("serving 1 3"), ctl_.index_of(ev("spawn 2 1", ctl_.spawns[0].pid)));
  EXPECT_TRUE(ctl_.retires.empty());
}

TEST_F(SupervisorTest, ScaleDownRetiresTheHighestSlotAfterSteering) {
  start_ready(3, 0);
  const pid_t last = slot(2).pid;
  ctl_.clear();
  sup_.scale(-1, 100);
  EXPECT_EQ(sup_.slots().size(), 2u);
  EXPECT_EQ(ctl_.servings, (std::vector<ServingCall>{{1, 2}}));
  EXPECT_EQ(ctl_.retires, (std::vector<RetireCall>{{last, false}}));
  EXPECT_LT(ctl_.index_of("serving 1 2"), ctl_.index_of(ev("retire", last, 0)));
  EXPECT_EQ(worker(last).state, WorkerState::retiring);
  EXPECT_TRUE(ctl_.spawns.empty());

  // Its exit is expected: no restart, and generation 1 still serves.
  sup_.worker_exited(last, 0, 0, 200);
  EXPECT_TRUE(ctl_.spawns.empty());
  EXPECT_TRUE(ctl_.gone_generations.empty());
  EXPECT_EQ(sup_.slots().size(), 2u);
}

TEST_F(SupervisorTest, ScaledDownWorkerIsKilledAtTheGracefulDeadline) {
  start_ready(2, 0);
  const pid_t last = slot(1).pid;
  sup_.scale(-1, 100);
  ctl_.clear();
  sup_.tick(100 + kGraceful - 1);
  EXPECT_TRUE(ctl_.signals.empty());
  sup_.tick(100 + kGraceful);
  EXPECT_EQ(ctl_.signals, (std::vector<SignalCall>{{last, SIGKILL}}));
  sup_.worker_exited(last, -1, SIGKILL, 100 + kGraceful + 1);
  EXPECT_TRUE(ctl_.spawns.empty());
}

TEST_F(SupervisorTest, ScaleNeverGoesBelowOne) {
  start_ready(1, 0);
  ctl_.clear();
  sup_.scale(-1, 100);
  sup_.scale(-1, 100);
  EXPECT_EQ(sup_.slots().size(), 1u);
  EXPECT_TRUE(ctl_.events.empty());
}

// The slot has no worker, but its socket may hold queued connections: one worker
// is started to take them (and retires with linger once ready); the slot is not
// refilled.
TEST_F(SupervisorTest, ScaleDownOfABackingOffSlotDrainsItsQueueOnce) {
  start_ready(2, 0);
  sup_.worker_exited(slot(1).pid, 1, 0, 10);
  sup_.worker_exited(slot(1).pid, 1, 0, 20);
  ASSERT_EQ(slot(1).pid, 0);
  ctl_.clear();
  sup_.scale(-1, 30);
  EXPECT_EQ(ctl_.servings, (std::vector<ServingCall>{{1, 1}}));
  EXPECT_TRUE(ctl_.retires.empty());
  ASSERT_EQ(ctl_.spawns.size(), 1u);
  EXPECT_EQ(ctl_.spawns[0].slot, 1);
  const pid_t drainer = ctl_.spawns[0].pid;
  sup_.tick(20 + kBase);  // its restart is no longer due: the slot is gone
  EXPECT_EQ(ctl_.spawns.size(), 1u);
  sup_.worker_ready(drainer, 40);
  EXPECT_EQ(ctl_.retires, (std::vector<RetireCall>{{drainer, false}}));
  EXPECT_EQ(sup_.slots().size(), 1u);
}

TEST_F(SupervisorTest, ScaleDuringReloadIsAppliedAfterPromotion) {
  start_ready(2, 0);
  const std::vector<pid_t> old = ctl_.pids_of(1);
  reload(2, 100);
  ctl_.clear();
  sup_.scale(+1, 110);
  sup_.scale(+1, 120);
  sup_.scale(-1, 130);
  EXPECT_TRUE(ctl_.events.empty());
  EXPECT_EQ(sup_.slots().size(), 2u);

  ready_all(2, 200);
  EXPECT_EQ(sup_.serving_generation(), 2u);
  // Net +1, applied to the new generation after the old one was retired.
  EXPECT_EQ(ctl_.servings, (std::vector<ServingCall>{{2, 2}, {2, 3}}));
  ASSERT_EQ(ctl_.spawns.size(), 1u);
  EXPECT_EQ(ctl_.spawns[0].slot, 2);
  EXPECT_EQ(ctl_.spawns[0].generation, 2u);
  EXPECT_EQ(sup_.slots().size(), 3u);
  EXPECT_EQ(ctl_.retires.size(), 2u);
  EXPECT_LT(ctl_.index_of(ev("retire", old[1], 1)), ctl_.index_of("serving 2 3"));
}

TEST_F(SupervisorTest, ScaleDownDuringReloadIsAppliedAfterPromotion) {
  start_ready(2, 0);
  reload(3, 100);
  sup_.scale(-1, 110);
  const std::vector<pid_t> fresh = ctl_.pids_of(2);
  ctl_.clear();
  ready_all(2, 200);
  EXPECT_EQ(ctl_.servings, (std::vector<ServingCall>{{2, 3}, {2, 2}}));
  EXPECT_EQ(sup_.slots().size(), 2u);
  EXPECT_EQ(worker(fresh[2]).state, WorkerState::retiring);
  EXPECT_EQ(ctl_.retires.back(), (RetireCall{fresh[2], false}));
}

TEST_F(SupervisorTest, ScaleDuringReloadIsAppliedAfterAnAbandonedOne) {
  start_ready(2, 0);
  reload(2, 100);
  sup_.scale(+1, 110);
  const std::vector<pid_t> fresh = ctl_.pids_of(2);
  ctl_.clear();
  ASSERT_EQ(fresh.size(), 2u);
  sup_.worker_exited(fresh[0], 1, 0, 200);
  EXPECT_EQ(sup_.reloads_failed(), 1u);
  EXPECT_EQ(ctl_.servings, (std::vector<ServingCall>{{1, 3}}));
  ASSERT_EQ(ctl_.spawns.size(), 1u);
  EXPECT_EQ(ctl_.spawns[0].generation, 1u);
  EXPECT_EQ(ctl_.spawns[0].slot, 2);
}

// A scale request made during a reload must not be lost when the reload that
// follows it (a pending one) cannot even start because its configuration is invalid.
TEST_F(SupervisorTest, ScaleDuringReloadSurvivesAnInvalidPendingReload) {
  start_ready(2, 0);
  reload(2, 100);
  sup_.scale(+1, 110);
  sup_.reload(120);  // pending
  ctl_.count = 0;    // ... and its configuration will be invalid
  ready_all(2, 200);
  EXPECT_EQ(sup_.serving_generation(), 2u);
  EXPECT_EQ(sup_.reloads_failed(), 1u);
  EXPECT_EQ(sup_.phase(), MasterPhase::running);
  EXPECT_EQ(sup_.slots().size(), 3u) << "the +1 requested during the reload was lost";
}

// --- worker timeout ------------------------------------------------------------------

TEST_F(SupervisorTest, SilentReadyWorkerIsKilledAndRestarted) {
  start_ready(2, 0);
  const pid_t quiet = slot(0).pid;
  const pid_t chatty = slot(1).pid;
  // Heartbeats postpone the timeout.
  sup_.worker_heartbeat(quiet, 1'000);
  sup_.worker_heartbeat(chatty, 1'000);
  ctl_.clear();
  sup_.tick(kWorkerTimeout);  // silent since ready at 0, but not since the heartbeat
  EXPECT_TRUE(ctl_.signals.empty());
  EXPECT_EQ(ctl_.timer, 1'000 + kWorkerTimeout);
  sup_.worker_heartbeat(chatty, 50'000);

  sup_.tick(1'000 + kWorkerTimeout - 1);
  EXPECT_TRUE(ctl_.signals.empty());
  sup_.tick(1'000 + kWorkerTimeout);
  EXPECT_EQ(ctl_.signals, (std::vector<SignalCall>{{quiet, SIGKILL}}));
  EXPECT_TRUE(worker(quiet).killed);
  EXPECT_EQ(ctl_.timer, 50'000 + kWorkerTimeout);  // the killed one no longer counts
  sup_.tick(1'000 + kWorkerTimeout + 10);
  EXPECT_EQ(ctl_.signals.size(), 1u) << "SIGKILL is sent once";

  sup_.worker_exited(quiet, -1, SIGKILL, 1'000 + kWorkerTimeout + 20);
  ASSERT_EQ(ctl_.spawns.size(), 1u);  // up long enough to be healthy: at once
  EXPECT_EQ(ctl_.spawns[0].slot, 0);
  EXPECT_EQ(ctl_.spawns[0].generation, 1u);
  EXPECT_EQ(slot(0).pid, ctl_.spawns[0].pid);
  EXPECT_EQ(slot(0).failures, 1u);
  EXPECT_TRUE(ctl_.gone_generations.empty());
}

TEST_F(SupervisorTest, ServingWorkerNotReadyWithinStartTimeoutIsKilled) {
  ctl_.count = 1;
  sup_.start(0);
  const pid_t pid = slot(0).pid;
  sup_.tick(kStartTimeout - 1);
  EXPECT_TRUE(ctl_.signals.empty());
  sup_.tick(kStartTimeout);
  EXPECT_EQ(ctl_.signals, (std::vector<SignalCall>{{pid, SIGKILL}}));
  sup_.worker_exited(pid, -1, SIGKILL, kStartTimeout + 1);
  // Never ready: a failure, first one, so restarted at once.
  EXPECT_EQ(ctl_.spawns.size(), 2u);
  EXPECT_EQ(slot(0).failures, 1u);
}

TEST_F(SupervisorTest, RetiringWorkersAreNotSubjectToTheWorkerTimeout) {
  start_ready(1, 0);
  const pid_t old = slot(0).pid;
  reload(1, 100);
  ready_all(2, 200);
  const pid_t fresh = slot(0).pid;
  ctl_.clear();
  // Old: killed at its graceful deadline only; new: heartbeats keep it alive.
  sup_.worker_heartbeat(fresh, 200 + kGraceful);
  sup_.tick(200 + kGraceful);
  EXPECT_EQ(ctl_.signals, (std::vector<SignalCall>{{old, SIGKILL}}));
  sup_.tick(kWorkerTimeout + 5'000);
  EXPECT_EQ(ctl_.signals.size(), 1u);
}

// --- stop --------------------------------------------------------------------------

TEST_F(SupervisorTest, GracefulStopQuitsNonRetiringWorkers) {
  start_ready(2, 0);
  const std::vector<pid_t> old = ctl_.pids_of(1);
  reload(2, 100);
  ready_all(2, 200);
  const std::vector<pid_t> fresh = ctl_.pids_of(2);
  ctl_.clear();

  sup_.stop(StopMode::graceful, 1'000);
  EXPECT_EQ(sup_.phase(), MasterPhase::draining);
  EXPECT_EQ(ctl_.signals.size(), 2u);
  for (pid_t pid : fresh) EXPECT_EQ(ctl_.signal_count(pid, SIGQUIT), 1u);
  for (pid_t pid : old) EXPECT_TRUE(std::none_of(ctl_.signals.begin(), ctl_.signals.end(),
                                                 [&](const SignalCall& s) { return s.pid == pid; }));
  EXPECT_EQ(ctl_.timer, 1'000 + kGraceful);

  // Crashes and exits during the stop restart nothing.
  sup_.worker_exited(fresh[0], 1, 0, 1'100);
  sup_.worker_exited(old[0], 0, 0, 1'200);
  sup_.worker_exited(old[1], 0, 0, 1'300);
  EXPECT_TRUE(ctl_.spawns.empty());
  EXPECT_EQ(ctl_.stopped_calls, 0);
  sup_.worker_exited(fresh[1], 0, 0, 1'400);
  EXPECT_EQ(ctl_.stopped_calls, 1);
  EXPECT_EQ(sup_.phase(), MasterPhase::stopped);
  EXPECT_EQ(ctl_.timer, 0u);
  EXPECT_TRUE(ctl_.spawns.empty());
  EXPECT_EQ(ctl_.gone_generations, std::vector<unsigned>{1});
}

TEST_F(SupervisorTest, FastStopTerminatesEveryWorkerAndKillsSurvivorsOnce) {
  start_ready(2, 0);
  const std::vector<pid_t> old = ctl_.pids_of(1);
  reload(2, 100);
  ready_all(2, 200);
  const std::vector<pid_t> fresh = ctl_.pids_of(2);
  ctl_.clear();

  sup_.stop(StopMode::fast, 1'000);
  EXPECT_EQ(sup_.phase(), MasterPhase::terminating);
  EXPECT_EQ(ctl_.signals.size(), 4u);  // retiring ones included
  for (pid_t pid : old) EXPECT_EQ(ctl_.signal_count(pid, SIGTERM), 1u);
  for (pid_t pid : fresh) EXPECT_EQ(ctl_.signal_count(pid, SIGTERM), 1u);
  EXPECT_EQ(ctl_.timer, 1'000 + kFast);

  sup_.worker_exited(old[0], 0, 0, 1'500);
  sup_.worker_exited(fresh[0], 0, 0, 1'600);
  sup_.tick(1'000 + kFast - 1);
  EXPECT_TRUE(ctl_.signals_with(SIGKILL).empty());
  sup_.tick(1'000 + kFast);
  EXPECT_EQ(ctl_.signals_with(SIGKILL), (std::vector<SignalCall>{{old[1], SIGKILL}, {fresh[1], SIGKILL}}));
  EXPECT_EQ(ctl_.timer, 0u);
  sup_.tick(1'000 + kFast + 1'000);
  EXPECT_EQ(ctl_.signals_with(SIGKILL).size(), 2u) << "SIGKILL is sent once";

  sup_.worker_exited(old[1], -1, SIGKILL, 7'000);
  EXPECT_EQ(ctl_.stopped_calls, 0);
  sup_.worker_exited(fresh[1], -1, SIGKILL, 7'000);
  EXPECT_EQ(ctl_.stopped_calls, 1);
  EXPECT_EQ(sup_.phase(), MasterPhase::stopped);
  EXPECT_TRUE(ctl_.spawns.empty());
}

TEST_F(SupervisorTest, FastStopDuringGracefulBringsTheDeadlineForward) {
  start_ready(2, 0);
  const std::vector<pid_t> pids = ctl_.pids_of(1);
  sup_.stop(StopMode::graceful, 1'000);
  ctl_.clear();
  sup_.stop(StopMode::fast, 2'000);
  EXPECT_EQ(sup_.phase(), MasterPhase::terminating);
  EXPECT_EQ(ctl_.signals_with(SIGTERM).size(), 2u);
  EXPECT_EQ(ctl_.timer, 2'000 + kFast);
  sup_.tick(2'000 + kFast - 1);
  EXPECT_TRUE(ctl_.signals_with(SIGKILL).empty());
  sup_.tick(2'000 + kFast);
  EXPECT_EQ(ctl_.signals_with(SIGKILL).size(), 2u);
  sup_.tick(1'000 + kGraceful);  // the old graceful deadline: nothing more
  EXPECT_EQ(ctl_.signals_with(SIGKILL).size(), 2u);
  for (pid_t pid : pids) sup_.worker_exited(pid, -1, SIGKILL, 1'000 + kGraceful + 1);
  EXPECT_EQ(ctl_.stopped_calls, 1);
}

TEST_F(SupervisorTest, FastStopLateInGracefulNeverPostponesTheDeadline) {
  start_ready(1, 0);
  const pid_t pid = slot(0).pid;
  sup_.stop(StopMode::graceful, 1'000);
  sup_.stop(StopMode::fast, 1'000 + kGraceful - 1'000);  // its own deadline would be later
  EXPECT_EQ(ctl_.timer, 1'000 + kGraceful);
  ctl_.clear();
  sup_.tick(1'000 + kGraceful);
  EXPECT_EQ(ctl_.signals, (std::vector<SignalCall>{{pid, SIGKILL}}));
  sup_.tick(1'000 + kGraceful + kFast);
  EXPECT_EQ(ctl_.signals.size(), 1u);
}

TEST_F(SupervisorTest, RepeatedStopsAreIgnored) {
  start_ready(2, 0);
  sup_.stop(StopMode::graceful, 1'000);
  ctl_.clear();
  sup_.stop(StopMode::graceful, 2'000);
  EXPECT_TRUE(ctl_.events.empty());
  EXPECT_EQ(ctl_.timer, 1'000 + kGraceful);
  sup_.stop(StopMode::fast, 3'000);
  ctl_.clear();
  sup_.stop(StopMode::fast, 4'000);
  sup_.stop(StopMode::graceful, 4'000);
  EXPECT_TRUE(ctl_.events.empty());
  EXPECT_EQ(sup_.phase(), MasterPhase::terminating);
  EXPECT_EQ(ctl_.timer, 3'000 + kFast);
}

TEST_F(SupervisorTest, StopDuringReloadQuitsTheStartingGenerationToo) {
  start_ready(2, 0);
  const std::vector<pid_t> old = ctl_.pids_of(1);
  reload(2, 100);
  const std::vector<pid_t> fresh = ctl_.pids_of(2);
  sup_.reload(150);  // pending: dropped by the stop
  ctl_.clear();
  sup_.stop(StopMode::graceful, 200);
  EXPECT_EQ(sup_.phase(), MasterPhase::draining);
  EXPECT_EQ(sup_.starting_generation(), 0u);
  EXPECT_FALSE(sup_.reload_pending());
  EXPECT_EQ(ctl_.signals_with(SIGQUIT).size(), 4u);
  // A ready from the new generation promotes nothing now.
  ready_all(2, 300);
  EXPECT_EQ(sup_.serving_generation(), 1u);
  EXPECT_TRUE(ctl_.retires.empty());
  EXPECT_TRUE(ctl_.servings.empty());
  for (pid_t pid : fresh) sup_.worker_exited(pid, 0, 0, 400);
  EXPECT_EQ(ctl_.gone_generations, std::vector<unsigned>{2});
  for (pid_t pid : old) sup_.worker_exited(pid, 0, 0, 500);
  EXPECT_EQ(ctl_.stopped_calls, 1);
  EXPECT_TRUE(ctl_.spawns.empty());
  EXPECT_EQ(ctl_.prepared.size(), 0u);
}

TEST_F(SupervisorTest, StopWithNoLiveWorkerStopsAtOnce) {
  ctl_.count = 1;
  ctl_.fail_next = 2;
  ASSERT_TRUE(sup_.start(0));
  ASSERT_EQ(slot(0).pid, 0);  // backing off
  sup_.stop(StopMode::graceful, 10);
  EXPECT_EQ(sup_.phase(), MasterPhase::stopped);
  EXPECT_EQ(ctl_.stopped_calls, 1);
  EXPECT_EQ(ctl_.timer, 0u);
  sup_.tick(kBase);  // the restart that was due never happens
  EXPECT_EQ(ctl_.spawns.size(), 2u);
}

TEST_F(SupervisorTest, EventsAfterStopAreIgnored) {
  start_ready(2, 0);
  const std::vector<pid_t> pids = ctl_.pids_of(1);
  sup_.stop(StopMode::fast, 100);
  for (pid_t pid : pids) sup_.worker_exited(pid, 0, 0, 200);
  ASSERT_EQ(sup_.phase(), MasterPhase::stopped);
  ASSERT_EQ(ctl_.stopped_calls, 1);
  ctl_.clear();

  sup_.reload(300);
  sup_.scale(+1, 300);
  sup_.scale(-1, 300);
  sup_.worker_ready(pids[0], 300);
  sup_.worker_heartbeat(pids[0], 300);
  sup_.worker_exited(pids[1], 1, 0, 300);
  sup_.tick(1'000'000);
  sup_.stop(StopMode::graceful, 400);
  sup_.stop(StopMode::fast, 400);
  EXPECT_FALSE(sup_.start(500));
  EXPECT_TRUE(ctl_.events.empty());
  EXPECT_EQ(ctl_.timer, 0u);
  EXPECT_EQ(sup_.phase(), MasterPhase::stopped);
}

TEST_F(SupervisorTest, PhaseAndStateNames) {
  EXPECT_EQ(to_string(MasterPhase::idle), "idle");
  EXPECT_EQ(to_string(MasterPhase::running), "running");
  EXPECT_EQ(to_string(MasterPhase::reloading), "reloading");
  EXPECT_EQ(to_string(MasterPhase::parked), "parked");
  EXPECT_EQ(to_string(MasterPhase::draining), "draining");
  EXPECT_EQ(to_string(MasterPhase::terminating), "terminating");
  EXPECT_EQ(to_string(MasterPhase::stopped), "stopped");
  EXPECT_EQ(to_string(WorkerState::starting), "starting");
  EXPECT_EQ(to_string(WorkerState::ready), "ready");
  EXPECT_EQ(to_string(WorkerState::retiring), "retiring");
}

// --- recycle (max_requests) --------------------------------------------------------

TEST_F(SupervisorTest, RecycleStartsASuccessorAndRetiresTheOldWorkerOnceItIsReady) {
  start_ready(2, 0);
  const pid_t old = slot(1).pid;
  ctl_.clear();
  sup_.recycle(old, 100);
  ASSERT_EQ(ctl_.spawns.size(), 1u);
  EXPECT_EQ(ctl_.spawns[0].slot, 1);
  EXPECT_EQ(ctl_.spawns[0].generation, 1u);  // same generation: not a reload
  const pid_t successor = ctl_.spawns[0].pid;
  EXPECT_EQ(slot(1).pid, old);  // the old worker serves until the successor is ready
  EXPECT_EQ(slot(1).successor, successor);
  EXPECT_EQ(worker(successor).state, WorkerState::starting);
  EXPECT_TRUE(ctl_.retires.empty());
  EXPECT_EQ(sup_.phase(), MasterPhase::running);

  // More heartbeats over the limit while it starts change nothing.
  sup_.recycle(old, 150);
  EXPECT_EQ(ctl_.spawns.size(), 1u);

  sup_.worker_ready(successor, 200);
  EXPECT_EQ(slot(1).pid, successor);
  EXPECT_EQ(slot(1).successor, 0);
  EXPECT_EQ(ctl_.retires, (std::vector<RetireCall>{{old, true}}));  // handover: no linger
  EXPECT_EQ(worker(old).state, WorkerState::retiring);
  EXPECT_EQ(worker(old).kill_due_ms, 200 + kGraceful);
  EXPECT_EQ(sup_.recycles(), 1u);
  EXPECT_TRUE(ctl_.servings.empty());  // steering is unchanged

  // The old worker's exit is expected: nothing restarts.
  sup_.worker_exited(old, 0, 0, 300);
  EXPECT_EQ(ctl_.spawns.size(), 1u);
  EXPECT_TRUE(ctl_.gone_generations.empty());
  EXPECT_EQ(slot(1).pid, successor);
}

TEST_F(SupervisorTest, RecycleIgnoresWorkersThatAreNotServing) {
  start_ready(2, 0);
  ctl_.clear();
  sup_.recycle(4242, 100);  // unknown
  EXPECT_TRUE(ctl_.spawns.empty());
  // During a reload the new generation replaces every worker anyway.
  const pid_t old = slot(0).pid;
  unsigned gen = reload(2, 100);
  sup_.recycle(old, 150);
  EXPECT_EQ(ctl_.pids_of(1).size(), 0u);
  ready_all(gen, 200);
  // A retiring worker is never recycled.
  ctl_.clear();
  sup_.recycle(old, 250);
  EXPECT_TRUE(ctl_.spawns.empty());
  // A worker that is still starting neither.
  const pid_t fresh = slot(0).pid;
  sup_.worker_exited(fresh, 1, 0, 300);  // crash: replacement starts
  const pid_t replacement = slot(0).pid;
  ASSERT_EQ(worker(replacement).state, WorkerState::starting);
  ctl_.clear();
  sup_.recycle(replacement, 310);
  EXPECT_TRUE(ctl_.spawns.empty());
}

TEST_F(SupervisorTest, SuccessorThatDiesKeepsTheOldWorkerAndIsRetriedLater) {
  start_ready(1, 0);
  const pid_t old = slot(0).pid;
  sup_.recycle(old, 100);
  const pid_t first = slot(0).successor;
  ctl_.clear();
  sup_.worker_exited(first, 1, 0, 150);
  EXPECT_EQ(slot(0).pid, old);
  EXPECT_EQ(slot(0).successor, 0);
  EXPECT_TRUE(ctl_.spawns.empty());  // no crash-restart of the slot: its worker is fine
  EXPECT_TRUE(ctl_.retires.empty());
  sup_.recycle(old, 1200);
  ASSERT_EQ(ctl_.spawns.size(), 1u);
  EXPECT_EQ(slot(0).successor, ctl_.spawns[0].pid);
}

TEST_F(SupervisorTest, SpawnFailureOfASuccessorKeepsTheOldWorker) {
  start_ready(1, 0);
  const pid_t old = slot(0).pid;
  ctl_.clear();
  ctl_.fail_next = 1;
  sup_.recycle(old, 100);
  EXPECT_EQ(slot(0).pid, old);
  EXPECT_EQ(slot(0).successor, 0);
  EXPECT_TRUE(ctl_.retires.empty());
  EXPECT_TRUE(ctl_.signals.empty());
}

TEST_F(SupervisorTest, SuccessorNotReadyInTimeIsKilledAndTheOldWorkerStays) {
  start_ready(1, 0);
  const pid_t old = slot(0).pid;
  sup_.recycle(old, 100);
  const pid_t successor = slot(0).successor;
  sup_.worker_heartbeat(old, 100 + kStartTimeout);
  sup_.tick(100 + kStartTimeout);
  EXPECT_EQ(ctl_.signal_count(successor, SIGKILL), 1u);
  ctl_.clear();
  sup_.worker_exited(successor, -1, SIGKILL, 100 + kStartTimeout + 5);
  EXPECT_EQ(slot(0).pid, old);
  EXPECT_EQ(slot(0).successor, 0);
  EXPECT_TRUE(ctl_.spawns.empty());
}

TEST_F(SupervisorTest, OldWorkerDyingWhileItsSuccessorStartsHandsTheSlotOver) {
  start_ready(1, 0);
  const pid_t old = slot(0).pid;
  sup_.recycle(old, 100);
  const pid_t successor = slot(0).successor;
  ctl_.clear();
  sup_.worker_exited(old, -1, SIGSEGV, 150);
  EXPECT_EQ(slot(0).pid, successor);
  EXPECT_EQ(slot(0).successor, 0);
  EXPECT_TRUE(ctl_.spawns.empty());  // no second replacement
  sup_.worker_ready(successor, 200);
  EXPECT_TRUE(ctl_.retires.empty());
  EXPECT_EQ(worker(successor).state, WorkerState::ready);
}

TEST_F(SupervisorTest, ReloadRetiresAStartingSuccessorWithTheOldGeneration) {
  start_ready(1, 0);
  const pid_t old = slot(0).pid;
  sup_.recycle(old, 100);
  const pid_t successor = slot(0).successor;
  unsigned gen = reload(1, 200);
  ready_all(gen, 300);
  EXPECT_EQ(worker(old).state, WorkerState::retiring);
  EXPECT_EQ(worker(successor).state, WorkerState::retiring);
  EXPECT_EQ(slot(0).successor, 0);
  // Its late ready does not take the slot.
  const pid_t serving = slot(0).pid;
  sup_.worker_ready(successor, 350);
  EXPECT_EQ(slot(0).pid, serving);
}

TEST_F(SupervisorTest, ScaleDownRetiresTheLastSlotsSuccessorToo) {
  start_ready(2, 0);
  const pid_t old = slot(1).pid;
  sup_.recycle(old, 100);
  const pid_t successor = slot(1).successor;
  ctl_.clear();
  sup_.scale(-1, 200);
  EXPECT_EQ(ctl_.retires, (std::vector<RetireCall>{{old, false}, {successor, false}}));
}

// --- park (WINCH) --------------------------------------------------------------------

TEST_F(SupervisorTest, ParkRetiresEveryWorkerAndRefillsNothing) {
  start_ready(2, 0);
  const pid_t a = slot(0).pid, b = slot(1).pid;
  ctl_.clear();
  sup_.park(100);
  EXPECT_EQ(sup_.phase(), MasterPhase::parked);
  EXPECT_TRUE(sup_.slots().empty());
  EXPECT_EQ(ctl_.retires, (std::vector<RetireCall>{{a, true}, {b, true}}));
  EXPECT_TRUE(ctl_.servings.empty());  // sockets and steering stay with the master
  EXPECT_EQ(ctl_.timer, 100 + kGraceful);
  sup_.worker_exited(a, 0, 0, 200);
  sup_.worker_exited(b, 0, 0, 250);
  EXPECT_TRUE(ctl_.spawns.empty());
  EXPECT_TRUE(sup_.workers().empty());
  EXPECT_EQ(sup_.phase(), MasterPhase::parked);
  EXPECT_EQ(ctl_.stopped_calls, 0);  // the master stays
  EXPECT_EQ(ctl_.timer, 0u);
  // Nothing to restart, scale or recycle while parked; a second WINCH is a no-op.
  sup_.tick(10'000);
  sup_.scale(+1, 10'000);
  sup_.park(10'000);
  EXPECT_TRUE(ctl_.spawns.empty());
  EXPECT_EQ(sup_.phase(), MasterPhase::parked);
}

TEST_F(SupervisorTest, ParkedWorkersStillDrainingAreKilledAtTheGracefulDeadline) {
  start_ready(1, 0);
  const pid_t a = slot(0).pid;
  sup_.park(100);
  sup_.tick(100 + kGraceful);
  EXPECT_EQ(ctl_.signal_count(a, SIGKILL), 1u);
}

TEST_F(SupervisorTest, ReloadAfterParkBringsANewGenerationBack) {
  start_ready(2, 0);
  const pid_t a = slot(0).pid;
  sup_.park(100);
  sup_.worker_exited(a, 0, 0, 150);  // b still draining
  ctl_.clear();
  unsigned gen = reload(3, 200);
  EXPECT_EQ(gen, 2u);
  EXPECT_EQ(sup_.phase(), MasterPhase::reloading);
  EXPECT_EQ(ctl_.pids_of(gen).size(), 3u);
  ready_all(gen, 300);
  EXPECT_EQ(sup_.phase(), MasterPhase::running);
  EXPECT_EQ(sup_.serving_generation(), gen);
  ASSERT_EQ(sup_.slots().size(), 3u);
  EXPECT_EQ(ctl_.servings, (std::vector<ServingCall>{{gen, 3}}));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(worker(slot(i).pid).generation, gen);
}

TEST_F(SupervisorTest, FailedReloadAfterParkStaysParked) {
  start_ready(1, 0);
  sup_.park(100);
  ctl_.count = 0;  // invalid configuration
  sup_.reload(200);
  EXPECT_EQ(sup_.phase(), MasterPhase::parked);
  ctl_.count = 1;
  ctl_.fail_next = 1;  // its worker cannot start: the reload is abandoned
  sup_.reload(300);
  EXPECT_EQ(sup_.phase(), MasterPhase::parked);
  EXPECT_TRUE(sup_.slots().empty());
  sup_.reload(400);
  EXPECT_EQ(sup_.phase(), MasterPhase::reloading);
}

TEST_F(SupervisorTest, ParkDuringReloadAbandonsItAndDropsQueuedRequests) {
  start_ready(1, 0);
  const pid_t old = slot(0).pid;
  unsigned gen = reload(1, 100);
  const pid_t fresh = ctl_.pids_of(gen).at(0);
  sup_.reload(150);  // queued
  sup_.scale(+1, 150);  // queued
  ctl_.clear();
  sup_.park(200);
  EXPECT_EQ(sup_.phase(), MasterPhase::parked);
  EXPECT_EQ(ctl_.signal_count(fresh, SIGKILL), 1u);
  EXPECT_EQ(ctl_.retires, (std::vector<RetireCall>{{old, true}}));
  EXPECT_TRUE(ctl_.spawns.empty());
  EXPECT_FALSE(sup_.reload_pending());
}

TEST_F(SupervisorTest, StopWhileParkedStopsOnceTheDrainingWorkersExit) {
  start_ready(1, 0);
  const pid_t a = slot(0).pid;
  sup_.park(100);
  sup_.stop(StopMode::graceful, 200);
  EXPECT_EQ(sup_.phase(), MasterPhase::draining);
  EXPECT_EQ(ctl_.signal_count(a, SIGQUIT), 0u);  // already retiring
  sup_.worker_exited(a, 0, 0, 300);
  EXPECT_EQ(sup_.phase(), MasterPhase::stopped);
  EXPECT_EQ(ctl_.stopped_calls, 1);
}

TEST_F(SupervisorTest, StopWhileParkedWithNoWorkerStopsAtOnce) {
  start_ready(1, 0);
  const pid_t a = slot(0).pid;
  sup_.park(100);
  sup_.worker_exited(a, 0, 0, 150);
  sup_.stop(StopMode::fast, 200);
  EXPECT_EQ(sup_.phase(), MasterPhase::stopped);
  EXPECT_EQ(ctl_.stopped_calls, 1);
}

}  // namespace
}  // namespace preforkd
