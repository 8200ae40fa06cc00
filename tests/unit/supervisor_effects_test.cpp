// Decisions that moved from the master into the supervisor and are seen only in
// its effects: the linger of a retiring worker, the max_requests limit with its
// jitter, which slot sockets are kept, and workers whose spawn answer comes too
// late.
#include <gtest/gtest.h>

#include <csignal>
#include <string>
#include <vector>

#include "master/supervisor.hpp"
#include "tests/unit/supervisor_driver.hpp"

namespace preforkd {
namespace {

class CountingIo : public FakeIo {
 public:
  int prepare_generation(unsigned) override { return count; }
  pid_t spawn(int, unsigned) override { return fail_spawns > 0 ? (--fail_spawns, -1) : next_pid++; }
  void signal(pid_t pid, int signum) override { signals.push_back({pid, signum}); }
  void retire(pid_t, bool) override {}
  void serving(unsigned, int) override {}
  void generation_gone(unsigned) override {}
  void worker_gone(pid_t) override {}
  void set_timer(std::uint64_t) override {}
  void all_stopped() override { ++stopped; }

  int count = 2;
  int fail_spawns = 0;
  pid_t next_pid = 100;
  std::vector<std::pair<pid_t, int>> signals;
  int stopped = 0;
};

ListenerConfig listener(const char* address) {
  ListenerConfig l;
  l.name = address;
  if (auto parsed = parse_address(address)) l.address = *parsed;
  return l;
}

class SupervisorEffects : public ::testing::Test {
 protected:
  SupervisorEffects() : sup_(io_, SupervisorOptions{}) {}

  void ready_all(std::uint64_t now) { sup_.ready_all(now); }
  pid_t worker_of(int slot) const { return sup_.worker_of(slot); }
  template <class T>
  std::vector<T> effects_of_type() const {
    std::vector<T> out;
    for (const Effect& e : sup_.effects)
      if (auto* t = std::get_if<T>(&e)) out.push_back(*t);
    return out;
  }
  std::uint32_t linger_of(pid_t pid) const {
    for (const auto& r : effects_of_type<effect::Retire>())
      if (r.pid == pid) return r.linger_ms;
    ADD_FAILURE() << "worker " << pid << " was not retired";
    return 0;
  }
  // Where the master was last told to send new connections.
  std::set<int> steered() const {
    auto all = effects_of_type<effect::Steer>();
    return all.empty() || all.back().groups.empty() ? std::set<int>{} : all.back().groups.front().slots;
  }
  // The sockets the master was last told to keep.
  SocketSet retained() const {
    auto all = effects_of_type<effect::RetainSockets>();
    return all.empty() ? SocketSet{} : all.back().sockets;
  }

  CountingIo io_;
  SupervisorDriver sup_;
};

TEST_F(SupervisorEffects, ARetiringWorkerLingersUnlessItsSuccessorPollsEveryOneOfItsSockets) {
  io_.listeners = {listener("127.0.0.1:8080"), listener("127.0.0.1:8081")};
  io_.count = 2;
  ASSERT_TRUE(sup_.start(0));
  ready_all(0);
  const pid_t a0 = worker_of(0), a1 = worker_of(1);
  // Generation 2 keeps both listeners: a hand-over, no linger.
  sup_.reload(10);
  ready_all(20);
  EXPECT_EQ(linger_of(a0), 0u);
  EXPECT_EQ(linger_of(a1), 0u);
  const pid_t b0 = worker_of(0);
  // Generation 3 drops 8081: whoever polled it lingers, though its slot has a
  // successor.
  io_.listeners = {listener("127.0.0.1:8080")};
  sup_.reload(30);
  ready_all(40);
  EXPECT_EQ(linger_of(b0), SupervisorOptions{}.linger_ms);
  EXPECT_GT(SupervisorOptions{}.linger_ms, 0u);
}

TEST_F(SupervisorEffects, AScaledDownSlotLingers) {
  io_.count = 2;
  ASSERT_TRUE(sup_.start(0));
  ready_all(0);
  const pid_t last = worker_of(1);
  sup_.scale(-1, 10);
  EXPECT_EQ(linger_of(last), SupervisorOptions{}.linger_ms);
}

TEST_F(SupervisorEffects, MaxRequestsLimitIsMaxPlusTheDrawnJitter) {
  io_.count = 1;
  io_.max_requests = 1000;
  io_.max_requests_jitter = 50;
  io_.draw = 137;  // 137 % 51 = 35: this worker's limit is 1035
  ASSERT_TRUE(sup_.start(0));
  ready_all(0);
  const pid_t pid = worker_of(0);
  EXPECT_EQ(sup_.workers().at(pid).request_limit, 1035u);
  const std::size_t spawns = effects_of_type<effect::Spawn>().size();
  sup_.worker_heartbeat(pid, 1000, 1034);
  EXPECT_EQ(effects_of_type<effect::Spawn>().size(), spawns) << "below the limit: no successor";
  sup_.worker_heartbeat(pid, 2000, 1035);
  EXPECT_EQ(effects_of_type<effect::Spawn>().size(), spawns + 1);
  EXPECT_NE(sup_.slots()[0].successor, 0);
}

TEST_F(SupervisorEffects, MaxRequestsZeroNeverRecycles) {
  io_.count = 1;
  io_.max_requests = 0;
  ASSERT_TRUE(sup_.start(0));
  ready_all(0);
  const std::size_t spawns = effects_of_type<effect::Spawn>().size();
  sup_.recycle(worker_of(0), 1000);
  EXPECT_EQ(effects_of_type<effect::Spawn>().size(), spawns);
}

TEST_F(SupervisorEffects, AParkedMasterKeepsItsSocketsThroughAReloadThatFailsAndOneThatSucceeds) {
  io_.count = 2;
  ASSERT_TRUE(sup_.start(0));
  ready_all(0);
  const SocketSet serving = retained();
  ASSERT_EQ(serving.size(), 2u);
  sup_.park(10);
  for (const auto& [pid, w] : std::map<pid_t, WorkerInfo>(sup_.workers())) sup_.worker_exited(pid, 0, 0, 20);
  EXPECT_EQ(retained(), serving) << "parked: the queues wait for the next generation";
  io_.fail_spawns = 1;
  sup_.reload(30);  // its first worker cannot start: abandoned, still parked
  EXPECT_EQ(sup_.phase(), MasterPhase::parked);
  EXPECT_EQ(retained(), serving);
  sup_.reload(40);
  EXPECT_EQ(sup_.phase(), MasterPhase::reloading);
  EXPECT_EQ(retained(), serving);
  ready_all(50);
  EXPECT_EQ(sup_.phase(), MasterPhase::running);
  EXPECT_EQ(retained(), serving);
}

TEST_F(SupervisorEffects, AFailedStartClosesWhatItBound) {
  io_.count = 0;
  EXPECT_FALSE(sup_.start(0));
  auto retains = effects_of_type<effect::RetainSockets>();
  ASSERT_EQ(retains.size(), 1u);
  EXPECT_TRUE(retains[0].sockets.empty());
}

TEST_F(SupervisorEffects, StoppingClosesEverySocketBeforeSignallingTheWorkers) {
  io_.count = 2;
  ASSERT_TRUE(sup_.start(0));
  ready_all(0);
  sup_.effects.clear();
  sup_.stop(StopMode::graceful, 10);
  ASSERT_FALSE(sup_.effects.empty());
  auto* retain = std::get_if<effect::RetainSockets>(&sup_.effects.front());
  ASSERT_NE(retain, nullptr);
  EXPECT_TRUE(retain->sockets.empty());
}

TEST_F(SupervisorEffects, AWorkerSpawnedForAStopThatCameMeanwhileIsKilledAndAwaited) {
  io_.count = 1;
  ASSERT_TRUE(sup_.start(0));
  ready_all(0);
  const pid_t old = worker_of(0);
  // The master asked for a Spawn (the crash's replacement) but a QUIT is
  // handled before the answer: as a master whose spawns are asynchronous would
  // see it.
  Supervisor& sup = const_cast<Supervisor&>(sup_.supervisor());
  std::vector<Effect> effects = sup.handle(event::Exited{old, 1, 0, {}}, 10);
  const effect::Spawn* spawn = nullptr;
  for (const Effect& e : effects)
    if ((spawn = std::get_if<effect::Spawn>(&e))) break;
  ASSERT_NE(spawn, nullptr);
  sup.handle(event::Signal{SIGQUIT}, 11);
  EXPECT_EQ(sup.phase(), MasterPhase::draining) << "the answer is still awaited";
  effects = sup.handle(event::Spawned{spawn->slot, spawn->generation, 555, 0}, 12);
  bool killed = false;
  for (const Effect& e : effects)
    if (auto* s = std::get_if<effect::Signal>(&e)) killed = killed || (s->pid == 555 && s->signum == SIGKILL);
  EXPECT_TRUE(killed);
  EXPECT_EQ(sup.phase(), MasterPhase::draining);
  effects = sup.handle(event::Exited{555, -1, SIGKILL, {}}, 13);
  EXPECT_EQ(sup.phase(), MasterPhase::stopped);
  bool all_stopped = false;
  for (const Effect& e : effects) all_stopped = all_stopped || std::holds_alternative<effect::AllStopped>(e);
  EXPECT_TRUE(all_stopped);
}

TEST_F(SupervisorEffects, CountersAreKeptPerWorkerAndSurviveItsExit) {
  io_.count = 1;
  ASSERT_TRUE(sup_.start(0));
  ready_all(0);
  const pid_t pid = worker_of(0);
  sup_.worker_heartbeat(pid, 1000, 42);
  EXPECT_EQ(sup_.supervisor().ledger().counters_of(pid).requests, 42u);
  sup_.worker_exited(pid, 1, 0, 2000);
  EXPECT_EQ(sup_.supervisor().ledger().total().requests, 42u);
}

// --- USR1: only a ready worker is signalled -----------------------------------------

class SupervisorReopen : public SupervisorEffects {
 protected:
  std::size_t usr1_to(pid_t pid) const {
    std::size_t n = 0;
    for (const auto& [p, s] : io_.signals) n += p == pid && s == SIGUSR1;
    return n;
  }
};

TEST_F(SupervisorReopen, AStartingWorkerGetsItsUsr1OnceReady) {
  io_.count = 2;
  ASSERT_TRUE(sup_.start(0));
  ready_all(0);
  const pid_t old0 = worker_of(0), old1 = worker_of(1);
  sup_.reload(10);  // generation 2 starting: it may have opened its logs before the rename
  std::vector<pid_t> starting;
  for (const auto& [pid, w] : sup_.workers())
    if (w.state == WorkerState::starting) starting.push_back(pid);
  ASSERT_EQ(starting.size(), 2u);
  sup_.signal(SIGUSR1, 12);
  EXPECT_EQ(usr1_to(old0), 1u);
  EXPECT_EQ(usr1_to(old1), 1u);
  for (pid_t pid : starting) EXPECT_EQ(usr1_to(pid), 0u) << "a worker that has not said it is ready";
  ready_all(20);
  for (pid_t pid : starting) EXPECT_EQ(usr1_to(pid), 1u) << "told once it is ready";
  // A later reopen tells it again, once.
  sup_.signal(SIGUSR1, 30);
  for (pid_t pid : starting) EXPECT_EQ(usr1_to(pid), 2u);
}

TEST_F(SupervisorReopen, AWorkerReadyAfterTheReopenWithoutOneIsNotSignalled) {
  io_.count = 1;
  ASSERT_TRUE(sup_.start(0));
  ready_all(0);
  EXPECT_TRUE(io_.signals.empty());
}

TEST_F(SupervisorReopen, ARetiringWorkerThatWasNeverReadyIsNotSignalled) {
  io_.count = 1;
  ASSERT_TRUE(sup_.start(0));
  ready_all(0);
  sup_.worker_exited(worker_of(0), 1, 0, 10);  // the replacement starts
  const pid_t fresh = worker_of(0);
  sup_.park(20);  // retires it before it was ever ready
  sup_.signal(SIGUSR1, 30);
  EXPECT_EQ(usr1_to(fresh), 0u);
}

// --- A stop during a max_requests recycle ---------------------------------------------

TEST_F(SupervisorEffects, AStopDuringARecycleEndsWhenTheSuccessorExitsLast) {
  io_.count = 1;
  ASSERT_TRUE(sup_.start(0));
  ready_all(0);
  const pid_t old = worker_of(0);
  sup_.recycle(old, 1000);
  const pid_t successor = sup_.slots()[0].successor;
  ASSERT_GT(successor, 0);
  sup_.stop(StopMode::graceful, 1010);
  sup_.worker_exited(old, 0, 0, 1020);
  EXPECT_EQ(sup_.phase(), MasterPhase::draining);
  sup_.worker_exited(successor, 0, 0, 1030);
  EXPECT_EQ(sup_.phase(), MasterPhase::stopped);
  EXPECT_EQ(io_.stopped, 1);
}

TEST_F(SupervisorEffects, AStopDuringARecycleEndsWhenTheOldWorkerExitsLast) {
  io_.count = 1;
  ASSERT_TRUE(sup_.start(0));
  ready_all(0);
  const pid_t old = worker_of(0);
  sup_.recycle(old, 1000);
  const pid_t successor = sup_.slots()[0].successor;
  ASSERT_GT(successor, 0);
  sup_.stop(StopMode::fast, 1010);
  sup_.worker_exited(successor, -1, SIGTERM, 1020);
  sup_.worker_exited(old, -1, SIGTERM, 1030);
  EXPECT_EQ(sup_.phase(), MasterPhase::stopped);
  EXPECT_EQ(io_.stopped, 1);
}

// --- A hung worker: new connections go elsewhere until its slot answers again --------

class SupervisorHungWorker : public SupervisorEffects {
 protected:
  void heartbeats(const std::vector<pid_t>& pids, std::uint64_t now) {
    for (pid_t pid : pids) sup_.worker_heartbeat(pid, now);
  }
  static constexpr std::uint64_t kSilent = SupervisorOptions{}.unresponsive_after_ms;
  static constexpr std::uint64_t kTimeout = SupervisorOptions{}.worker_timeout_ms;
};

TEST_F(SupervisorHungWorker, ASilentSlotIsSteeredAroundUntilItsReplacementIsReady) {
  io_.count = 3;
  ASSERT_TRUE(sup_.start(0));
  ready_all(0);
  ASSERT_EQ(steered(), (std::set<int>{0, 1, 2}));
  const pid_t a = worker_of(0), b = worker_of(1), hung = worker_of(2);
  const SocketSet sockets = retained();
  std::uint64_t now = 0;
  while (now + 1000 < kSilent) {
    now += 1000;
    heartbeats({a, b, hung}, now);
    sup_.tick(now);
  }
  EXPECT_EQ(steered(), (std::set<int>{0, 1, 2}));
  const std::uint64_t last_heard = now;
  // From here `hung` is silent; the timer is due when it has been silent too long.
  now += 1000;
  heartbeats({a, b}, now);
  sup_.tick(now);
  EXPECT_EQ(steered(), (std::set<int>{0, 1, 2})) << "one missed heartbeat is not enough";
  now = last_heard + kSilent;
  heartbeats({a, b}, now);
  sup_.tick(now);
  EXPECT_EQ(steered(), (std::set<int>{0, 1})) << "about 2 s of silence: no new connections for slot 2";
  EXPECT_EQ(retained(), sockets) << "its queue is kept for whoever serves slot 2 next";
  EXPECT_TRUE(io_.signals.empty()) << "not killed before worker_timeout";
  // worker_timeout: killed and replaced; the replacement gets nothing new until ready.
  for (now += 1000; now < last_heard + kTimeout; now += 1000) {
    heartbeats({a, b}, now);
    sup_.tick(now);
  }
  sup_.tick(last_heard + kTimeout);
  ASSERT_EQ(io_.signals.size(), 1u);
  EXPECT_EQ(io_.signals[0], (std::pair<pid_t, int>{hung, SIGKILL}));
  sup_.worker_exited(hung, -1, SIGKILL, last_heard + kTimeout + 5);
  const pid_t replacement = worker_of(2);
  ASSERT_GT(replacement, 0);
  EXPECT_NE(replacement, hung);
  EXPECT_EQ(steered(), (std::set<int>{0, 1}));
  EXPECT_EQ(retained(), sockets);
  sup_.worker_ready(replacement, last_heard + kTimeout + 40);
  EXPECT_EQ(steered(), (std::set<int>{0, 1, 2}));
}

TEST_F(SupervisorHungWorker, AWorkerThatAnswersAgainIsSteeredBackAndNotKilled) {
  io_.count = 3;
  ASSERT_TRUE(sup_.start(0));
  ready_all(0);
  const pid_t a = worker_of(0), stopped = worker_of(1), c = worker_of(2);
  heartbeats({a, c}, 1000);
  heartbeats({a, c}, 2000);
  sup_.tick(kSilent);
  EXPECT_EQ(steered(), (std::set<int>{0, 2}));
  // SIGCONT: its heartbeat resumes.
  sup_.worker_heartbeat(stopped, 5000);
  EXPECT_EQ(steered(), (std::set<int>{0, 1, 2}));
  heartbeats({a, stopped, c}, kTimeout);
  sup_.tick(kTimeout);
  EXPECT_TRUE(io_.signals.empty());
}

TEST_F(SupervisorHungWorker, TheTimerWakesTheSupervisorWhenAWorkerHasBeenSilentTooLong) {
  io_.count = 2;
  ASSERT_TRUE(sup_.start(0));
  ready_all(100);
  auto timers = effects_of_type<effect::ArmTimer>();
  ASSERT_FALSE(timers.empty());
  EXPECT_EQ(timers.back().due_ms, 100 + kSilent);
}

TEST_F(SupervisorHungWorker, WhenEverySlotIsSilentNoneIsSteeredAway) {
  io_.count = 2;
  ASSERT_TRUE(sup_.start(0));
  ready_all(0);
  sup_.tick(kSilent);
  EXPECT_EQ(steered(), (std::set<int>{0, 1}));
}

// --- A slot that goes away holding queued connections ----------------------------------

TEST_F(SupervisorEffects, AParkedExtraSlotDroppedByTheReloadIsDrainedBeforeItsSocketCloses) {
  io_.count = 2;
  ASSERT_TRUE(sup_.start(0));
  ready_all(0);
  sup_.scale(+1, 10);  // TTIN: slot 2
  ready_all(20);
  const SocketSet three = retained();
  ASSERT_EQ(three.size(), 3u);
  sup_.park(30);  // WINCH
  for (const auto& [pid, w] : std::map<pid_t, WorkerInfo>(sup_.workers())) sup_.worker_exited(pid, 0, 0, 40);
  EXPECT_EQ(retained(), three);
  sup_.reload(50);  // HUP: the configuration says 2 workers
  const std::size_t spawns_before_ready = effects_of_type<effect::Spawn>().size();
  ready_all(60);
  auto spawns = effects_of_type<effect::Spawn>();
  ASSERT_EQ(spawns.size(), spawns_before_ready + 1);
  EXPECT_EQ(spawns.back().slot, 2) << "a worker for the dropped slot, to take its queue";
  EXPECT_EQ(spawns.back().generation, sup_.serving_generation());
  EXPECT_EQ(retained(), three) << "its socket stays until that worker is done";
  EXPECT_EQ(steered(), (std::set<int>{0, 1})) << "and gets nothing new";
  pid_t drainer = 0;
  for (const auto& [pid, w] : sup_.workers())
    if (w.slot == 2) drainer = pid;
  ASSERT_GT(drainer, 0);
  sup_.worker_ready(drainer, 70);
  EXPECT_EQ(linger_of(drainer), SupervisorOptions{}.linger_ms);
  EXPECT_EQ(sup_.workers().at(drainer).state, WorkerState::retiring);
  EXPECT_EQ(retained(), three);
  sup_.worker_exited(drainer, 0, 0, 400);
  EXPECT_EQ(retained().size(), 2u) << "drained: now it closes";
  EXPECT_EQ(sup_.slots().size(), 2u);
}

TEST_F(SupervisorEffects, AnAnswerToASpawnNobodyAskedForIsKilled) {
  io_.count = 1;
  ASSERT_TRUE(sup_.start(0));
  ready_all(0);
  io_.signals.clear();
  sup_.handle(event::Spawned{0, 7, 4242, 0}, 10);  // generation 7 never existed
  ASSERT_EQ(io_.signals.size(), 1u);
  EXPECT_EQ(io_.signals[0], (std::pair<pid_t, int>{4242, SIGKILL}));
  sup_.worker_exited(4242, -1, SIGKILL, 20);
  EXPECT_EQ(sup_.workers().size(), 1u);
  EXPECT_EQ(sup_.phase(), MasterPhase::running);
}

}  // namespace
}  // namespace preforkd
