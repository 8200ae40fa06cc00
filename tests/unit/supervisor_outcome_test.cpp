// What every reload and binary-upgrade request comes to, as the supervisor
// reports it (Notify *_requested and *_finished, with the reason a failure has):
// the outcomes control-socket clients wait for. Then the binary upgrade's
// sequences on both masters: hand-over (auto and manual), rollback, the sockets
// each keeps and who steers the shared groups when.
#include <gtest/gtest.h>

#include <csignal>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "master/supervisor.hpp"
#include "tests/unit/supervisor_driver.hpp"

namespace preforkd {
namespace {

using What = effect::Notify::What;

class OutcomeIo : public FakeIo {
 public:
  int prepare_generation(unsigned generation) override {
    prepared.push_back(generation);
    return count;
  }
  pid_t spawn(int, unsigned) override { return next_pid++; }
  void signal(pid_t pid, int signum) override { signals.push_back({pid, signum}); }
  void retire(pid_t pid, bool successor) override { retired[pid] = successor; }
  void serving(unsigned, int) override {}
  void retain(const SocketSet& sockets) override { retained = sockets; }
  void generation_gone(unsigned) override {}
  void worker_gone(pid_t) override {}
  void set_timer(std::uint64_t) override {}
  void all_stopped() override { ++stopped; }
  pid_t start_upgrade() override { return successor_pid; }

  int count = 2;
  pid_t next_pid = 100;
  pid_t successor_pid = 9000;
  std::vector<unsigned> prepared;
  std::vector<std::pair<pid_t, int>> signals;
  std::map<pid_t, bool> retired;
  SocketSet retained;
  int stopped = 0;
};

// The default listener's sockets of these slots.
SocketSet sockets(std::initializer_list<int> slots) {
  SocketSet out;
  for (int slot : slots) out.insert({key_of(FakeIo::default_listener()), slot});
  return out;
}

SupervisorOptions options() {
  SupervisorOptions o;
  o.start_timeout_ms = 10'000;
  o.graceful_timeout_ms = 30'000;
  return o;
}

class Outcomes : public ::testing::Test {
 protected:
  Outcomes() : sup_(io_, options()) {}
  void SetUp() override {
    ASSERT_TRUE(sup_.start(0));
    sup_.ready_all(0);
  }
  // "N ok", "N failed: reason" for each reload_finished, in order.
  std::vector<std::string> reload_outcomes() const {
    std::vector<std::string> out;
    for (const auto& n : sup_.notes_of(What::reload_finished))
      out.push_back(std::to_string(n.attempt) + (n.ok ? " ok" : " failed: " + n.reason));
    return out;
  }
  std::vector<std::string> upgrade_outcomes() const {
    std::vector<std::string> out;
    for (const auto& n : sup_.notes_of(What::upgrade_finished))
      out.push_back(std::to_string(n.attempt) + (n.ok ? " ok " + std::string(handover_name(n.handover))
                                                      : " failed: " + n.reason));
    return out;
  }
  std::vector<std::pair<unsigned, bool>> requests(What what) const {
    std::vector<std::pair<unsigned, bool>> out;
    for (const auto& n : sup_.notes_of(what)) out.push_back({n.attempt, n.queued});
    return out;
  }
  pid_t starting_worker() const {
    for (const auto& [pid, w] : sup_.workers())
      if (w.state == WorkerState::starting) return pid;
    return 0;
  }

  OutcomeIo io_;
  SupervisorDriver sup_;
};

// --- Reloads ------------------------------------------------------------------------

TEST_F(Outcomes, EveryReloadRequestGetsOneOutcomeWithItsAttempt) {
  sup_.reload(10);
  sup_.ready_all(20);
  sup_.reload(30);
  sup_.ready_all(40);
  EXPECT_EQ(requests(What::reload_requested), (std::vector<std::pair<unsigned, bool>>{{1, false}, {2, false}}));
  EXPECT_EQ(reload_outcomes(), (std::vector<std::string>{"1 ok", "2 ok"}));
  EXPECT_EQ(sup_.notes_of(What::reload_finished).back().generation, 3u) << "the generation that serves";
}

TEST_F(Outcomes, AnInvalidConfigurationFailsWithTheLoadersMessage) {
  io_.count = 0;
  sup_.reload(10);
  EXPECT_EQ(reload_outcomes(), (std::vector<std::string>{"1 failed: config.toml:1:1: workers: invalid"}));
}

TEST_F(Outcomes, AWorkerThatExitsDuringStartIsNamedWithItsStatus) {
  sup_.reload(10);
  pid_t pid = starting_worker();
  ASSERT_NE(pid, 0);
  sup_.worker_exited(pid, 70, 0, 20);
  EXPECT_EQ(reload_outcomes(), (std::vector<std::string>{"1 failed: reload to generation 2 failed: worker " +
                                                         std::to_string(pid) +
                                                         " exited during start (status 70); generation 1 keeps serving"}));
}

TEST_F(Outcomes, AGenerationNotReadyInTimeFailsWithTheTimeout) {
  sup_.reload(10);
  sup_.tick(10 + 10'000);
  ASSERT_EQ(reload_outcomes().size(), 1u);
  EXPECT_NE(reload_outcomes()[0].find("not ready within 10000 ms"), std::string::npos) << reload_outcomes()[0];
}

// Requests made while a reload runs wait for the one queued after it, which reads
// the configuration after all of them: they share its attempt and its outcome.
TEST_F(Outcomes, CoalescedRequestsShareTheQueuedAttempt) {
  sup_.reload(10);
  sup_.reload(11);
  sup_.reload(12);
  EXPECT_EQ(requests(What::reload_requested),
            (std::vector<std::pair<unsigned, bool>>{{1, false}, {2, true}, {2, true}}));
  io_.count = 0;  // the file the queued reload reads is broken
  sup_.ready_all(20);
  EXPECT_EQ(reload_outcomes(), (std::vector<std::string>{"1 ok", "2 failed: config.toml:1:1: workers: invalid"}));
  EXPECT_TRUE(sup_.notes_of(What::reload_finished)[0].pending) << "systemd waits for the queued one";
}

TEST_F(Outcomes, AStopAbandonsTheReloadInProgressAndTheQueuedOne) {
  sup_.reload(10);
  sup_.reload(11);
  sup_.stop(StopMode::graceful, 12);
  EXPECT_EQ(reload_outcomes(), (std::vector<std::string>{"1 failed: abandoned: the master is stopping (QUIT)",
                                                         "2 failed: abandoned: the master is stopping (QUIT)"}));
  sup_.reload(13);
  EXPECT_EQ(reload_outcomes().back(), "3 failed: the master is draining");
  // Abandoned reloads were tried (systemd and the metrics hear of them); the
  // refused one was not.
  auto finished = sup_.notes_of(What::reload_finished);
  EXPECT_FALSE(finished[0].refused);
  EXPECT_FALSE(finished[1].refused);
  EXPECT_TRUE(finished[2].refused);
}

TEST_F(Outcomes, WinchAbandonsTheReloadInProgressAndTheQueuedOne) {
  sup_.reload(10);
  sup_.reload(11);
  sup_.park(12);
  // The queued one is dropped first, so that abandoning the other does not start it.
  EXPECT_EQ(reload_outcomes(), (std::vector<std::string>{
                                   "2 failed: abandoned: the workers are being stopped (WINCH)",
                                   "1 failed: reload to generation 2 failed: the workers are being stopped (WINCH); "
                                   "generation 1 keeps serving"}));
  EXPECT_EQ(sup_.phase(), MasterPhase::parked);
}

// The promise clients rely on, over a seeded random sequence of operator actions
// and faults: every attempt named in a reload_requested gets exactly one
// reload_finished, and the master never ends up with an attempt nobody answers.
TEST_F(Outcomes, EveryAttemptIsAnsweredExactlyOnceUnderRandomSequences) {
  for (unsigned seed = 1; seed <= 20; ++seed) {
    OutcomeIo io;
    SupervisorDriver sup(io, options());
    ASSERT_TRUE(sup.start(0));
    sup.ready_all(0);
    std::mt19937 random(seed);
    std::uint64_t now = 0;
    for (int step = 0; step < 60 && sup.phase() != MasterPhase::stopped; ++step) {
      now += 1 + random() % 3000;
      switch (random() % 9) {
        case 0:
        case 1: sup.reload(now); break;
        case 2: sup.ready_all(now); break;
        case 3: io.count = static_cast<int>(random() % 3); break;  // 0: the next file is invalid
        case 4: sup.park(now); break;
        case 5:
          for (const auto& [pid, w] : sup.workers())
            if (w.state == WorkerState::starting) {
              sup.worker_exited(pid, 1, 0, now);
              break;
            }
          break;
        case 6: sup.tick(now); break;
        case 7:
          if (random() % 4 == 0) sup.stop(random() % 2 ? StopMode::graceful : StopMode::fast, now);
          break;
        case 8: sup.scale(random() % 2 ? 1 : -1, now); break;
      }
    }
    // Let whatever runs finish: everything ready, then time passes.
    sup.ready_all(now + 1);
    sup.tick(now + 100'000);
    sup.ready_all(now + 100'001);
    std::map<unsigned, int> finished;
    std::set<unsigned> requested;
    for (const auto& n : sup.notes) {
      if (n.what == What::reload_requested) requested.insert(n.attempt);
      if (n.what == What::reload_finished) ++finished[n.attempt];
    }
    for (unsigned attempt : requested)
      EXPECT_EQ(finished[attempt], 1) << "seed " << seed << ": attempt " << attempt;
    for (const auto& [attempt, count] : finished)
      EXPECT_TRUE(requested.count(attempt)) << "seed " << seed << ": outcome of unrequested attempt " << attempt;
  }
}

// --- Binary upgrade, the old master ----------------------------------------------------

TEST_F(Outcomes, AutoHandoverStopsTheOldMasterGracefullyOnceTheNewOneServes) {
  sup_.upgrade(10);
  EXPECT_EQ(sup_.supervisor().successor(), SuccessorState::starting);
  ASSERT_EQ(sup_.notes_of(What::upgrade_started).size(), 1u);
  EXPECT_EQ(sup_.notes_of(What::upgrade_started)[0].pid, 9000);
  EXPECT_TRUE(sup_.last_steer.shared) << "from now on the groups are shared";
  sup_.successor_serving(UpgradeHandover::automatic, 20);
  EXPECT_EQ(upgrade_outcomes(), (std::vector<std::string>{"1 ok auto"}));
  EXPECT_EQ(sup_.phase(), MasterPhase::draining);
  int quits = 0;
  for (const auto& [pid, signum] : io_.signals) quits += signum == SIGQUIT;
  EXPECT_EQ(quits, 2);
}

TEST_F(Outcomes, ManualHandoverParksKeepsEverySocketAndLeavesTheSteeringToTheNewMaster) {
  SocketSet before = io_.retained;
  ASSERT_EQ(before, sockets({0, 1}));
  sup_.upgrade(10);
  sup_.successor_serving(UpgradeHandover::manual, 20);
  EXPECT_EQ(upgrade_outcomes(), (std::vector<std::string>{"1 ok manual"}));
  EXPECT_EQ(sup_.phase(), MasterPhase::parked);
  EXPECT_EQ(io_.retired.size(), 2u);
  for (const auto& [pid, successor] : io_.retired) EXPECT_TRUE(successor) << "no linger: the sockets stay";
  for (const auto& [pid, w] : std::map<pid_t, WorkerInfo>(sup_.workers())) sup_.worker_exited(pid, 0, 0, 30);
  EXPECT_EQ(io_.retained, before);
  EXPECT_TRUE(sup_.last_steer.groups.empty()) << "parked in the window: the serving master steers";
  // TTIN/TTOU would change the groups the new master steers: refused.
  int spawned = static_cast<int>(io_.next_pid);
  sup_.scale(+1, 40);
  EXPECT_EQ(static_cast<int>(io_.next_pid), spawned);
}

// HUP to the parked old master: a generation of the configuration it served before
// USR2, not re-read (the file may hold the new one); once it serves it steers, over
// the shared groups, explicitly.
TEST_F(Outcomes, HupInTheWindowRollsBackWithTheConfigurationServedBefore) {
  sup_.upgrade(10);
  sup_.successor_serving(UpgradeHandover::manual, 20);
  std::size_t prepared = io_.prepared.size();
  sup_.reload(30);
  EXPECT_EQ(io_.prepared.size(), prepared) << "not re-read";
  EXPECT_EQ(sup_.reused, (std::vector<unsigned>{2}));
  sup_.ready_all(40);
  EXPECT_EQ(sup_.phase(), MasterPhase::running);
  EXPECT_EQ(sup_.serving_generation(), 2u);
  EXPECT_EQ(reload_outcomes(), (std::vector<std::string>{"1 ok"}));
  ASSERT_EQ(sup_.last_steer.groups.size(), 1u);
  EXPECT_EQ(sup_.last_steer.groups[0].slots, (std::set<int>{0, 1}));
  EXPECT_TRUE(sup_.last_steer.shared);
  // Another HUP while the new master still runs: refused (it would re-read).
  sup_.reload(50);
  EXPECT_NE(reload_outcomes().back().find("2 failed: new master 9000 serves alongside this one"), std::string::npos)
      << reload_outcomes().back();
  // QUIT to the new master: it exits; this master serves alone, steering unshared.
  sup_.successor_exited("", 60);
  EXPECT_EQ(sup_.supervisor().successor(), SuccessorState::none);
  EXPECT_EQ(sup_.phase(), MasterPhase::running);
  EXPECT_FALSE(sup_.last_steer.shared);
  EXPECT_EQ(sup_.reused.size(), 1u) << "already serving: nothing started again";
  // And a new upgrade may start.
  sup_.upgrade(70);
  EXPECT_EQ(sup_.supervisor().successor(), SuccessorState::starting);
}

// QUIT (or TERM, or a crash) of the new master without a HUP to the old one: the
// parked master brings its workers back by itself, as nginx's does.
TEST_F(Outcomes, TheNewMasterExitingInTheWindowBringsTheOldWorkersBack) {
  sup_.upgrade(10);
  sup_.successor_serving(UpgradeHandover::manual, 20);
  sup_.successor_exited("", 30);
  EXPECT_EQ(sup_.reused, (std::vector<unsigned>{2}));
  EXPECT_EQ(sup_.phase(), MasterPhase::reloading);
  sup_.ready_all(40);
  EXPECT_EQ(sup_.phase(), MasterPhase::running);
  int serving = 0;
  for (const auto& [pid, w] : sup_.workers()) serving += w.generation == 2 && w.state == WorkerState::ready;
  EXPECT_EQ(serving, 2);
}

TEST_F(Outcomes, QuitToTheOldMasterInTheWindowCompletesTheUpgrade) {
  sup_.upgrade(10);
  sup_.successor_serving(UpgradeHandover::manual, 20);
  for (const auto& [pid, w] : std::map<pid_t, WorkerInfo>(sup_.workers())) sup_.worker_exited(pid, 0, 0, 30);
  sup_.stop(StopMode::graceful, 40);
  EXPECT_EQ(sup_.phase(), MasterPhase::stopped);
  EXPECT_EQ(io_.stopped, 1);
  EXPECT_TRUE(io_.retained.empty());
}

TEST_F(Outcomes, AFailedUpgradeCarriesTheNewMastersError) {
  sup_.upgrade(10);
  sup_.successor_exited("/etc/p.toml:3:11: workers: expected integer or \"auto\"", 20);
  EXPECT_EQ(upgrade_outcomes(),
            (std::vector<std::string>{"1 failed: /etc/p.toml:3:11: workers: expected integer or \"auto\""}));
  EXPECT_EQ(sup_.phase(), MasterPhase::running);
  EXPECT_FALSE(sup_.last_steer.shared);
  sup_.successor_exited("", 30);  // no successor: nothing
  EXPECT_EQ(upgrade_outcomes().size(), 1u);
}

TEST_F(Outcomes, AnUpgradeThatCannotStartFailsAndAnotherMayFollow) {
  io_.successor_pid = 0;
  sup_.upgrade(10);
  EXPECT_EQ(upgrade_outcomes(), (std::vector<std::string>{"1 failed: uv_spawn: no such file"}));
  EXPECT_EQ(sup_.supervisor().successor(), SuccessorState::none);
  io_.successor_pid = 9001;
  sup_.upgrade(20);
  EXPECT_EQ(sup_.supervisor().successor_pid(), 9001);
}

TEST_F(Outcomes, Usr2AndHupAreRefusedWithReasonsWhileAnUpgradeRuns) {
  sup_.upgrade(10);
  sup_.upgrade(11);
  sup_.reload(12);
  EXPECT_EQ(upgrade_outcomes(),
            (std::vector<std::string>{"2 failed: new master 9000 is still starting (QUIT it to abort that upgrade)"}));
  ASSERT_EQ(reload_outcomes().size(), 1u);
  EXPECT_NE(reload_outcomes()[0].find("1 failed: new master 9000 is starting and has read the config itself"),
            std::string::npos);
  sup_.successor_serving(UpgradeHandover::manual, 20);
  sup_.upgrade(21);
  EXPECT_NE(upgrade_outcomes().back().find("serves with this master as its fallback"), std::string::npos);
}

TEST_F(Outcomes, Usr2IsRefusedWhileReloadingOrParked) {
  sup_.reload(10);
  sup_.upgrade(11);
  EXPECT_EQ(upgrade_outcomes(), (std::vector<std::string>{"1 failed: not now (reloading)"}));
  sup_.ready_all(20);
  sup_.park(30);
  sup_.upgrade(31);
  EXPECT_EQ(upgrade_outcomes().back(), "2 failed: not now (parked)");
}

// A QUIT to the old master while its successor starts is a stop as at any time;
// the successor's later "serving" is still the upgrade's outcome, and parks nothing.
TEST_F(Outcomes, ServingAfterTheOldMasterWasToldToStopOnlyAnswersTheClient) {
  sup_.upgrade(10);
  sup_.stop(StopMode::graceful, 20);
  sup_.successor_serving(UpgradeHandover::manual, 30);
  EXPECT_EQ(upgrade_outcomes(), (std::vector<std::string>{"1 ok manual"}));
  EXPECT_EQ(sup_.phase(), MasterPhase::draining);
}

// --- Binary upgrade, the new master ----------------------------------------------------

class NewMaster : public ::testing::Test {
 protected:
  NewMaster() : sup_(io_, options()) {}
  OutcomeIo io_;
  SupervisorDriver sup_;
};

// The old master had four slots, the new configuration has two: the old master's
// copies keep sockets 2 and 3 in the group, so the new master keeps them too (its
// picture of the group's order stays true), leaves the steering to the old master
// until its own workers are ready, then steers explicitly to its two.
TEST_F(NewMaster, KeepsTheAdoptedSocketsAndStartsSteeringOnlyOnceReady) {
  sup_.handle(event::Start{4242, sockets({0, 1, 2, 3})}, 0);
  EXPECT_EQ(sup_.supervisor().predecessor(), 4242);
  EXPECT_EQ(io_.retained, sockets({0, 1, 2, 3}));
  EXPECT_TRUE(sup_.last_steer.groups.empty()) << "the old master's steering stands while ours start";
  sup_.ready_all(10);
  ASSERT_EQ(sup_.last_steer.groups.size(), 1u);
  EXPECT_EQ(sup_.last_steer.groups[0].slots, (std::set<int>{0, 1}));
  EXPECT_TRUE(sup_.last_steer.shared);
  // TTIN/TTOU on the new master are its own business: its own sockets.
  sup_.scale(+1, 20);
  EXPECT_EQ(sup_.slots().size(), 3u);
  // USR2 before the old master is gone: refused (three masters on one group).
  sup_.upgrade(30);
  ASSERT_EQ(sup_.notes_of(What::upgrade_finished).size(), 1u);
  EXPECT_NE(sup_.notes_of(What::upgrade_finished)[0].reason.find("(4242) still runs"), std::string::npos);
  // The old master is gone: the extra sockets close, steering is ours alone.
  sup_.handle(event::PredecessorGone{}, 40);
  EXPECT_EQ(io_.retained, sockets({0, 1, 2}));
  EXPECT_FALSE(sup_.last_steer.shared);
}

// Stopping while the old master lives (a rollback): new connections go back to the
// old master's sockets before this master lets go of its own.
TEST_F(NewMaster, StopsByHandingTheSteeringBackToTheOldMastersSockets) {
  io_.count = 3;
  sup_.handle(event::Start{4242, sockets({0, 1})}, 0);
  sup_.ready_all(10);
  EXPECT_EQ(sup_.last_steer.groups[0].slots, (std::set<int>{0, 1, 2}));
  int steers = sup_.steers;
  sup_.stop(StopMode::graceful, 20);
  ASSERT_EQ(sup_.steers, steers + 1);
  EXPECT_EQ(sup_.last_steer.groups[0].slots, (std::set<int>{0, 1}));
  EXPECT_TRUE(sup_.last_steer.shared);
  // And that steer came before the sockets were let go of.
  int steer_at = -1, retain_at = -1;
  for (int i = 0; i < static_cast<int>(sup_.effects.size()); ++i) {
    if (auto* s = std::get_if<effect::Steer>(&sup_.effects[i]); s && s->groups.size() == 1 &&
                                                                 s->groups[0].slots == std::set<int>{0, 1})
      steer_at = i;
    if (auto* r = std::get_if<effect::RetainSockets>(&sup_.effects[i]); r && r->sockets.empty()) retain_at = i;
  }
  EXPECT_GE(steer_at, 0);
  EXPECT_GT(retain_at, steer_at);
}

TEST_F(NewMaster, APredecessorGoneBeforeStartIsNoPredecessor) {
  sup_.handle(event::Start{}, 0);
  sup_.ready_all(10);
  EXPECT_FALSE(sup_.last_steer.shared);
  EXPECT_EQ(sup_.supervisor().predecessor(), 0);
}

}  // namespace
}  // namespace preforkd
