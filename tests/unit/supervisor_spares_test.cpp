// Pre-spawned workers (prespawn): when the supervisor asks for spares, which
// Spawn takes one, when they are discarded, and that a spare never counts as a
// worker, a crash or a reason to keep the master from stopping.
#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <set>
#include <vector>

#include "master/supervisor.hpp"
#include "tests/unit/supervisor_driver.hpp"

namespace preforkd {
namespace {

class SpareIo : public FakeIo {
 public:
  SpareIo() { prespawn = true; }
  int prepare_generation(unsigned) override { return count; }
  pid_t spawn(int, unsigned) override {
    ++fresh_spawns;
    return next_pid++;
  }
  void signal(pid_t pid, int signum) override {
    if (signum == SIGKILL) killed.push_back(pid);
  }
  void retire(pid_t, bool) override {}
  void serving(unsigned, int) override {}
  void generation_gone(unsigned) override {}
  void worker_gone(pid_t) override {}
  void set_timer(std::uint64_t) override {}
  void all_stopped() override { ++stopped; }
  bool start_spare(pid_t spare, int, unsigned) override { return !fail_handoff.count(spare); }

  int count = 2;
  pid_t next_pid = 1000;
  int fresh_spawns = 0;
  int stopped = 0;
  std::vector<pid_t> killed;
  std::set<pid_t> fail_handoff;
};

class SpareTest : public ::testing::Test {
 protected:
  SpareTest() : sup_(io_, SupervisorOptions{}) {}

  void start_ready() {
    ASSERT_TRUE(sup_.start(0));
    sup_.ready_all(1);
  }
  std::vector<pid_t> idle_spares() const {
    std::vector<pid_t> out;
    for (const auto& [pid, killed] : sup_.supervisor().spares())
      if (!killed) out.push_back(pid);
    return out;
  }
  bool killed(pid_t pid) const { return std::count(io_.killed.begin(), io_.killed.end(), pid) == 1; }

  SpareIo io_;
  SupervisorDriver sup_;
};

TEST_F(SpareTest, OneSparePerSlotIsMadeOnceTheMasterRuns) {
  start_ready();
  EXPECT_EQ(io_.fresh_spawns, 2);  // generation 1 itself: nothing to take yet
  EXPECT_EQ(sup_.spares_spawned, (std::vector<pid_t>{7000, 7001}));
  EXPECT_EQ(idle_spares(), (std::vector<pid_t>{7000, 7001}));
  // Spares are not workers: not in the worker table, not in a slot.
  EXPECT_EQ(sup_.workers().count(7000), 0u);
  EXPECT_EQ(sup_.slots().size(), 2u);
}

TEST_F(SpareTest, AReloadStartsItsGenerationFromTheSparesAndRefillsThePoolOnlyAfterwards) {
  start_ready();
  sup_.reload(100);
  EXPECT_EQ(sup_.spare_starts, (std::vector<pid_t>{7000, 7001}));
  EXPECT_EQ(io_.fresh_spawns, 2);  // no fork for generation 2
  EXPECT_EQ(sup_.workers().at(7000).generation, 2u);
  EXPECT_EQ(sup_.workers().at(7001).slot, 1);
  // While generation 2 starts, no new spare competes with it for the CPU.
  EXPECT_EQ(sup_.spares_spawned.size(), 2u);
  EXPECT_TRUE(idle_spares().empty());
  sup_.ready_all(150);
  EXPECT_EQ(sup_.serving_generation(), 2u);
  EXPECT_EQ(sup_.spares_spawned, (std::vector<pid_t>{7000, 7001, 7002, 7003}));
  EXPECT_EQ(idle_spares(), (std::vector<pid_t>{7002, 7003}));
}

TEST_F(SpareTest, AReloadToMoreSlotsThanSparesSpawnsTheRest) {
  start_ready();
  io_.count = 3;
  sup_.reload(100);
  EXPECT_EQ(sup_.spare_starts, (std::vector<pid_t>{7000, 7001}));
  EXPECT_EQ(io_.fresh_spawns, 3);
  sup_.ready_all(150);
  EXPECT_EQ(idle_spares().size(), 3u);
}

// A spare is preforkd's own worker; an [exec] program must be exec'd with its
// sockets in place. A reload to [exec] forks its programs afresh, the built-in
// generation's spares are killed once the programs serve, and none are made.
TEST_F(SpareTest, AnExecGenerationNeitherTakesNorMakesSpares) {
  start_ready();
  ASSERT_EQ(idle_spares(), (std::vector<pid_t>{7000, 7001}));
  io_.exec.command = {"gunicorn", "app:app"};
  io_.exec.program = "/usr/bin/gunicorn";
  sup_.reload(100);
  EXPECT_TRUE(sup_.spare_starts.empty());
  EXPECT_EQ(io_.fresh_spawns, 4);
  std::vector<pid_t> programs;
  for (const auto& [pid, w] : sup_.workers())
    if (w.generation == 2) programs.push_back(pid);
  ASSERT_EQ(programs.size(), 2u);
  for (pid_t pid : programs) sup_.notice(pid, "READY=1", 120);
  EXPECT_EQ(sup_.serving_generation(), 2u);
  EXPECT_TRUE(killed(7000));
  EXPECT_TRUE(killed(7001));
  EXPECT_TRUE(idle_spares().empty());
  EXPECT_EQ(sup_.spares_spawned.size(), 2u);  // only generation 1's
}

TEST_F(SpareTest, ACrashedWorkerIsReplacedByASpare) {
  start_ready();
  pid_t worker = sup_.worker_of(0);
  sup_.worker_exited(worker, -1, SIGSEGV, 5'000);
  EXPECT_EQ(sup_.worker_crashes(), 1u);
  EXPECT_EQ(sup_.spare_starts, (std::vector<pid_t>{7000}));
  EXPECT_EQ(sup_.slots()[0].pid, 7000);
  // The pool is refilled at once (the master is running, not reloading).
  EXPECT_EQ(idle_spares(), (std::vector<pid_t>{7001, 7002}));
}

TEST_F(SpareTest, ASpareThatDiesUnaskedIsNoCrashAndStopsThePoolUntilAReloadSucceeds) {
  start_ready();
  sup_.worker_exited(7000, 1, 0, 1'000);
  EXPECT_EQ(sup_.worker_crashes(), 0u);
  EXPECT_EQ(sup_.slots()[0].pid, sup_.worker_of(0));
  EXPECT_NE(sup_.slots()[0].pid, 0);
  // Not replaced, and the other one goes too: a spare that cannot stay up would
  // otherwise be forked in a loop.
  EXPECT_TRUE(idle_spares().empty());
  EXPECT_TRUE(killed(7001));
  EXPECT_EQ(sup_.spares_spawned.size(), 2u);
  sup_.reload(2'000);
  sup_.ready_all(2'100);
  EXPECT_EQ(sup_.serving_generation(), 2u);
  EXPECT_EQ(idle_spares().size(), 2u);
}

TEST_F(SpareTest, AStopKillsTheSparesAndWaitsForThemToBeReaped) {
  start_ready();
  sup_.stop(StopMode::graceful, 1'000);
  EXPECT_TRUE(killed(7000));
  EXPECT_TRUE(killed(7001));
  for (pid_t pid : {sup_.worker_of(0), sup_.worker_of(1)}) sup_.worker_exited(pid, 0, 0, 1'100);
  EXPECT_EQ(io_.stopped, 0);  // the spares are not reaped yet
  sup_.worker_exited(7000, -1, SIGKILL, 1'200);
  EXPECT_EQ(io_.stopped, 0);
  sup_.worker_exited(7001, -1, SIGKILL, 1'200);
  EXPECT_EQ(io_.stopped, 1);
  EXPECT_EQ(sup_.worker_crashes(), 0u);
}

TEST_F(SpareTest, ParkingAndAnUpgradeDiscardTheSpares) {
  start_ready();
  sup_.upgrade(1'000);  // the successor starts: this master will not reload
  EXPECT_TRUE(killed(7000));
  EXPECT_TRUE(killed(7001));
  sup_.worker_exited(7000, -1, SIGKILL, 1'100);
  sup_.worker_exited(7001, -1, SIGKILL, 1'100);
  // The upgrade fails: this master serves alone again and makes spares again.
  sup_.successor_exited("new master exited (status 1)", 2'000);
  EXPECT_EQ(idle_spares(), (std::vector<pid_t>{7002, 7003}));
  sup_.park(3'000);
  EXPECT_TRUE(killed(7002));
  EXPECT_TRUE(killed(7003));
  EXPECT_TRUE(idle_spares().empty());
}

TEST_F(SpareTest, FewerSlotsKillTheSparesTooMany) {
  start_ready();
  sup_.scale(-1, 1'000);
  EXPECT_EQ(sup_.slots().size(), 1u);
  EXPECT_EQ(idle_spares().size(), 1u);
  EXPECT_EQ(io_.killed.size(), 1u);
}

TEST_F(SpareTest, ASpareThatCannotBeHandedItsSocketsIsKilledAndTheSpawnFails) {
  start_ready();
  io_.fail_handoff = {7000};
  sup_.reload(100);
  EXPECT_TRUE(killed(7000));
  // Like any worker that cannot be started: the reload is abandoned and
  // generation 1 keeps serving.
  EXPECT_EQ(sup_.serving_generation(), 1u);
  EXPECT_EQ(sup_.phase(), MasterPhase::running);
  EXPECT_EQ(sup_.reloads_failed(), 1u);
  sup_.worker_exited(7000, -1, SIGKILL, 200);
  EXPECT_EQ(sup_.worker_crashes(), 0u);
  sup_.reload(300);
  sup_.ready_all(400);
  EXPECT_EQ(sup_.serving_generation(), 3u);
}

TEST_F(SpareTest, WithoutPrespawnNoSpareIsEverAskedFor) {
  io_.prespawn = false;
  start_ready();
  sup_.reload(100);
  sup_.ready_all(200);
  sup_.worker_exited(sup_.worker_of(0), -1, SIGSEGV, 20'000);
  EXPECT_TRUE(sup_.spares_spawned.empty());
  EXPECT_TRUE(sup_.spare_starts.empty());
  for (const Effect& e : sup_.effects) EXPECT_FALSE(std::holds_alternative<effect::SpawnSpare>(e));
}

TEST_F(SpareTest, ASpareSpawnAnsweredAfterAStopIsKilled) {
  io_.prespawn = true;
  ASSERT_TRUE(sup_.start(0));
  sup_.ready_all(1);
  sup_.worker_exited(7000, -1, SIGKILL, 2);  // unasked: the pool stops
  sup_.stop(StopMode::fast, 10);
  EXPECT_TRUE(killed(7001));
  for (pid_t pid : {sup_.worker_of(0), sup_.worker_of(1)}) sup_.worker_exited(pid, 0, 0, 20);
  EXPECT_EQ(io_.stopped, 0);
  sup_.worker_exited(7001, -1, SIGKILL, 30);
  EXPECT_EQ(io_.stopped, 1);
}

}  // namespace
}  // namespace preforkd
