// The supervisor with exec-mode workers ([exec]): readiness from READY=1 or from
// staying alive, retirement as a stop signal after the linger, the watchdog
// that starts with the first WATCHDOG=1, deadlines moved by EXTEND_TIMEOUT_USEC=,
// STOPPING=1 unasked, USR1 as the program's reopen signal, and a reload that
// never gets ready. Events in, effects out; no processes.
#include <gtest/gtest.h>

#include <csignal>
#include <set>
#include <vector>

#include "master/supervisor.hpp"
#include "tests/unit/supervisor_driver.hpp"

namespace preforkd {
namespace {

class ExecIo : public FakeIo {
 public:
  ExecIo() {
    exec.command = {"gunicorn", "app:app"};
    exec.program = "/usr/bin/gunicorn";
  }
  int prepare_generation(unsigned) override { return count; }
  pid_t spawn(int, unsigned) override {
    ++spawns;
    return next_pid++;
  }
  void signal(pid_t pid, int signum) override { signals.push_back({pid, signum}); }
  void retire(pid_t pid, bool) override { retired.push_back(pid); }
  void serving(unsigned, int) override {}
  void steer(const std::set<int>& slots) override { steered = slots; }
  void reopen_logs(std::size_t workers) override { reopen_told = workers; }
  void generation_ready(unsigned generation) override { ready_generations.push_back(generation); }
  void reload_finished(unsigned, bool ok, bool) override { reloads.push_back(ok); }
  void generation_gone(unsigned) override {}
  void worker_gone(pid_t) override {}
  void set_timer(std::uint64_t due_ms) override { timer = due_ms; }
  void all_stopped() override { stopped = true; }

  // Signals sent to pid, in order.
  std::vector<int> signals_to(pid_t pid) const {
    std::vector<int> out;
    for (const auto& [p, s] : signals)
      if (p == pid) out.push_back(s);
    return out;
  }

  int count = 2;
  int spawns = 0;
  pid_t next_pid = 100;
  std::vector<std::pair<pid_t, int>> signals;
  std::vector<pid_t> retired;  // Retire effects: a program must never get one
  std::set<int> steered;
  std::size_t reopen_told = 0;
  std::vector<unsigned> ready_generations;
  std::vector<bool> reloads;
  std::uint64_t timer = 0;
  bool stopped = false;
};

class SupervisorExec : public ::testing::Test {
 protected:
  SupervisorExec() : sup_(io_, options()) {}
  static SupervisorOptions options() {
    SupervisorOptions o;
    o.graceful_timeout_ms = 5'000;
    o.worker_timeout_ms = 8'000;
    return o;
  }
  // Starts generation 1 and has every program say READY=1.
  void start_ready(std::uint64_t now = 0) {
    ASSERT_TRUE(sup_.start(now));
    for (int slot = 0; slot < io_.count; ++slot) sup_.notice(sup_.worker_of(slot), "READY=1", now);
    ASSERT_EQ(io_.ready_generations, std::vector<unsigned>{1});
  }
  const WorkerInfo& info(pid_t pid) const { return sup_.workers().at(pid); }

  ExecIo io_;
  SupervisorDriver sup_;
};

TEST_F(SupervisorExec, ReadyMeansReadyEqualsOne) {
  ASSERT_TRUE(sup_.start(0));
  const pid_t a = sup_.worker_of(0), b = sup_.worker_of(1);
  EXPECT_TRUE(info(a).exec);
  EXPECT_FALSE(info(a).heartbeats);
  // Other assignments are not readiness.
  sup_.notice(a, "STATUS=booting\nMAINPID=7\nREADY=0", 10);
  EXPECT_EQ(info(a).state, WorkerState::starting);
  EXPECT_EQ(info(a).status, "booting");
  sup_.notice(a, "READY=1\nSTATUS=Gunicorn arbiter booted", 20);
  EXPECT_EQ(info(a).state, WorkerState::ready);
  EXPECT_EQ(info(a).status, "Gunicorn arbiter booted");
  EXPECT_TRUE(io_.ready_generations.empty());
  sup_.notice(b, "READY=1", 30);
  EXPECT_EQ(io_.ready_generations, std::vector<unsigned>{1});
  // Notices for a pid that is no worker, or a built-in one, change nothing.
  sup_.notice(999, "READY=1", 40);
  EXPECT_EQ(sup_.workers().count(999), 0u);
}

TEST_F(SupervisorExec, ReadyByDurationIsAliveThatLong) {
  io_.exec.ready_after_s = 2;
  ASSERT_TRUE(sup_.start(1'000));
  EXPECT_EQ(io_.timer, 3'000u);  // the earliest deadline: ready at start + 2 s
  sup_.tick(2'999);
  EXPECT_EQ(info(sup_.worker_of(0)).state, WorkerState::starting);
  sup_.tick(3'000);
  EXPECT_EQ(info(sup_.worker_of(0)).state, WorkerState::ready);
  EXPECT_EQ(info(sup_.worker_of(1)).state, WorkerState::ready);
  EXPECT_EQ(io_.ready_generations, std::vector<unsigned>{1});
}

TEST_F(SupervisorExec, AReloadRetiresProgramsWithTheirStopSignalAtOnce) {
  io_.exec.stop_signal = SIGQUIT;
  start_ready();
  const pid_t old0 = sup_.worker_of(0), old1 = sup_.worker_of(1);
  sup_.reload(1'000);
  for (int slot = 0; slot < 2; ++slot)
    for (const auto& [pid, w] : sup_.workers())
      if (w.generation == 2 && w.slot == slot) sup_.notice(pid, "READY=1", 1'500);
  EXPECT_EQ(sup_.serving_generation(), 2u);
  // Their successors poll the very same sockets: no linger.
  EXPECT_EQ(io_.signals_to(old0), std::vector<int>{SIGQUIT});
  EXPECT_EQ(io_.signals_to(old1), std::vector<int>{SIGQUIT});
  EXPECT_TRUE(io_.retired.empty()) << "a program has no IPC pipe for a retire message";
  EXPECT_EQ(info(old0).state, WorkerState::retiring);
  // Still there after graceful_timeout: killed.
  sup_.tick(1'500 + 4'999);
  EXPECT_EQ(io_.signals_to(old0), std::vector<int>{SIGQUIT});
  sup_.tick(1'500 + 5'000);
  EXPECT_EQ(io_.signals_to(old0), (std::vector<int>{SIGQUIT, SIGKILL}));
}

TEST_F(SupervisorExec, ScalingDownSteersFirstLingersThenStops) {
  start_ready();
  const pid_t last = sup_.worker_of(1);
  sup_.scale(-1, 1'000);
  EXPECT_EQ(io_.steered, std::set<int>{0});
  EXPECT_TRUE(io_.signals_to(last).empty()) << "it keeps accepting stragglers during the linger";
  EXPECT_EQ(io_.timer, 1'300u);
  sup_.tick(1'299);
  EXPECT_TRUE(io_.signals_to(last).empty());
  sup_.tick(1'300);
  EXPECT_EQ(io_.signals_to(last), std::vector<int>{SIGTERM});
  // graceful_timeout counts from the stop signal.
  sup_.tick(1'300 + 4'999);
  EXPECT_EQ(io_.signals_to(last), std::vector<int>{SIGTERM});
  sup_.tick(1'300 + 5'000);
  EXPECT_EQ(io_.signals_to(last), (std::vector<int>{SIGTERM, SIGKILL}));
}

TEST_F(SupervisorExec, WorkerTimeoutAppliesOnlyOnceAProgramSendsWatchdog) {
  start_ready();
  const pid_t a = sup_.worker_of(0);
  sup_.tick(100'000);  // far beyond worker_timeout: silence is all a program owes us without WATCHDOG=1
  EXPECT_TRUE(io_.signals_to(a).empty());
  EXPECT_EQ(io_.steered, (std::set<int>{0, 1}));
  sup_.notice(a, "WATCHDOG=1", 100'000);
  EXPECT_TRUE(info(a).heartbeats);
  EXPECT_EQ(io_.timer, 100'000u + 6'000u);  // three quarters of worker_timeout (8 s)
  sup_.tick(105'999);
  EXPECT_EQ(io_.steered, (std::set<int>{0, 1}));
  sup_.tick(106'000);  // a ping missed: nothing new for its slot
  EXPECT_EQ(io_.steered, std::set<int>{1});
  sup_.notice(a, "WATCHDOG=1", 107'000);  // back
  EXPECT_EQ(io_.steered, (std::set<int>{0, 1}));
  sup_.tick(107'000 + 7'999);
  EXPECT_TRUE(io_.signals_to(a).empty());
  sup_.tick(107'000 + 8'000);
  EXPECT_EQ(io_.signals_to(a), std::vector<int>{SIGKILL});
}

TEST_F(SupervisorExec, AReloadThatNeverGetsReadyIsAbandonedAtTheStartTimeout) {
  io_.exec.start_timeout_s = 3;
  start_ready();
  const pid_t old0 = sup_.worker_of(0);
  sup_.reload(1'000);
  std::vector<pid_t> fresh;
  for (const auto& [pid, w] : sup_.workers())
    if (w.generation == 2) fresh.push_back(pid);
  ASSERT_EQ(fresh.size(), 2u);
  sup_.notice(fresh[0], "READY=1", 1'100);  // one of two: not enough
  sup_.tick(3'999);
  EXPECT_EQ(sup_.phase(), MasterPhase::reloading);
  sup_.tick(4'000);
  EXPECT_EQ(sup_.phase(), MasterPhase::running);
  EXPECT_EQ(sup_.serving_generation(), 1u);
  EXPECT_EQ(io_.reloads, std::vector<bool>{false});
  for (pid_t pid : fresh) EXPECT_EQ(io_.signals_to(pid), std::vector<int>{SIGKILL});
  EXPECT_TRUE(io_.signals_to(old0).empty()) << "the old generation keeps serving";
}

// `-s reload --wait` prints the reason of a failed reload: for a program that
// exits at once, its exit and its last words (the trampoline's "execv(...): No
// such file or directory", a traceback's last line), which the operator would
// otherwise have to find in the error log.
TEST_F(SupervisorExec, AReloadWhoseProgramExitsAtOnceFailsWithItsLastOutput) {
  start_ready();
  sup_.reload(1'000);
  const auto requested = sup_.notes_of(effect::Notify::What::reload_requested);
  ASSERT_EQ(requested.size(), 1u);
  pid_t fresh = 0;
  for (const auto& [pid, w] : sup_.workers())
    if (w.generation == 2) fresh = pid;
  ASSERT_NE(fresh, 0);
  sup_.worker_exited(fresh, 127, 0, 1'050, "preforkd exec slot=0 gen=2: execv(/srv/app/serve): No such file or directory");
  EXPECT_EQ(sup_.phase(), MasterPhase::running);
  EXPECT_EQ(sup_.serving_generation(), 1u);
  const auto finished = sup_.notes_of(effect::Notify::What::reload_finished);
  ASSERT_EQ(finished.size(), 1u);
  EXPECT_FALSE(finished[0].ok);
  EXPECT_EQ(finished[0].attempt, requested[0].attempt);
  EXPECT_EQ(finished[0].reason, "reload to generation 2 failed: worker " + std::to_string(fresh) +
                                    " exited during start (status 127; its last output: \"preforkd exec slot=0 "
                                    "gen=2: execv(/srv/app/serve): No such file or directory\"); generation 1 "
                                    "keeps serving");
  // Without output (a program that said nothing, or a built-in worker) the exit alone.
  sup_.reload(2'000);
  for (const auto& [pid, w] : sup_.workers())
    if (w.generation == 3) fresh = pid;
  sup_.worker_exited(fresh, 0, SIGSEGV, 2'050);
  const auto again = sup_.notes_of(effect::Notify::What::reload_finished);
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again[1].reason, "reload to generation 3 failed: worker " + std::to_string(fresh) +
                                 " exited during start (signal 11 (" + strsignal(SIGSEGV) +
                                 ")); generation 1 keeps serving");
}

TEST_F(SupervisorExec, ExtendTimeoutUsecMovesTheStartDeadline) {
  io_.exec.start_timeout_s = 3;
  start_ready();
  sup_.reload(1'000);
  std::vector<pid_t> fresh;
  for (const auto& [pid, w] : sup_.workers())
    if (w.generation == 2) fresh.push_back(pid);
  sup_.notice(fresh[1], "EXTEND_TIMEOUT_USEC=5000000", 3'500);  // until 8.5 s
  sup_.tick(4'000);
  EXPECT_EQ(sup_.phase(), MasterPhase::reloading);
  sup_.notice(fresh[0], "READY=1", 8'000);
  sup_.notice(fresh[1], "READY=1", 8'400);
  EXPECT_EQ(sup_.serving_generation(), 2u);
  EXPECT_EQ(io_.reloads, std::vector<bool>{true});

  // A slot's replacement (the serving generation) has its own deadline, moved the same way.
  const pid_t a = sup_.worker_of(0);
  sup_.worker_exited(a, 1, 0, 20'000);
  const pid_t replacement = sup_.worker_of(0);
  ASSERT_NE(replacement, 0);
  sup_.notice(replacement, "EXTEND_TIMEOUT_USEC=10000000", 22'000);
  sup_.tick(23'000);
  EXPECT_TRUE(io_.signals_to(replacement).empty());
  sup_.tick(32'000);
  EXPECT_EQ(io_.signals_to(replacement), std::vector<int>{SIGKILL});
}

TEST_F(SupervisorExec, StoppingUnaskedSteersNewConnectionsAwayUntilReplaced) {
  start_ready();
  const pid_t a = sup_.worker_of(0);
  sup_.notice(a, "STOPPING=1", 1'000);
  EXPECT_EQ(io_.steered, std::set<int>{1});
  sup_.notice(a, "WATCHDOG=1", 1'100);  // still pinging while it drains: still going
  EXPECT_EQ(io_.steered, std::set<int>{1});
  sup_.worker_exited(a, 0, 0, 1'500);
  const pid_t replacement = sup_.worker_of(0);
  ASSERT_NE(replacement, a);
  EXPECT_EQ(io_.steered, std::set<int>{1}) << "its queue waits for the replacement";
  sup_.notice(replacement, "READY=1", 1'600);
  EXPECT_EQ(io_.steered, (std::set<int>{0, 1}));
}

TEST_F(SupervisorExec, QuitSendsTheStopSignalToEveryProgramAndTermIsTerm) {
  io_.exec.stop_signal = SIGINT;
  io_.count = 3;
  start_ready();
  const pid_t lingering = sup_.worker_of(2);
  sup_.scale(-1, 1'000);  // lingering: not signalled yet
  EXPECT_TRUE(io_.signals_to(lingering).empty());
  sup_.stop(StopMode::graceful, 1'100);
  for (int slot = 0; slot < 2; ++slot) EXPECT_EQ(io_.signals_to(sup_.worker_of(slot)), std::vector<int>{SIGINT});
  EXPECT_EQ(io_.signals_to(lingering), std::vector<int>{SIGINT}) << "the sockets go now; so does the linger";
  sup_.tick(1'400);  // the linger's end sends nothing more
  EXPECT_EQ(io_.signals_to(lingering), std::vector<int>{SIGINT});
  sup_.stop(StopMode::fast, 1'500);
  EXPECT_EQ(io_.signals_to(lingering), (std::vector<int>{SIGINT, SIGTERM}));
}

TEST_F(SupervisorExec, ParkingStopsProgramsAtOnceAndAReloadBringsThemBack) {
  start_ready();
  const pid_t a = sup_.worker_of(0), b = sup_.worker_of(1);
  sup_.park(1'000);
  EXPECT_EQ(sup_.phase(), MasterPhase::parked);
  // The master keeps every socket for the generation a reload brings: nothing to linger for.
  EXPECT_EQ(io_.signals_to(a), std::vector<int>{SIGTERM});
  EXPECT_EQ(io_.signals_to(b), std::vector<int>{SIGTERM});
  sup_.worker_exited(a, 0, 0, 1'500);
  sup_.worker_exited(b, 0, 0, 1'500);
  EXPECT_EQ(io_.spawns, 2) << "nothing refilled while parked";
  sup_.reload(2'000);
  for (const auto& [pid, w] : std::map<pid_t, WorkerInfo>(sup_.workers())) sup_.notice(pid, "READY=1", 2'100);
  EXPECT_EQ(sup_.phase(), MasterPhase::running);
  EXPECT_EQ(sup_.serving_generation(), 2u);
  EXPECT_EQ(io_.spawns, 4);
}

TEST_F(SupervisorExec, Usr1BecomesTheProgramsReopenSignal) {
  io_.exec.reopen_signal = SIGHUP;
  start_ready();
  sup_.signal(SIGUSR1, 1'000);
  EXPECT_EQ(io_.reopen_told, 2u);
  EXPECT_EQ(io_.signals_to(sup_.worker_of(0)), std::vector<int>{SIGHUP});
  // reopen_signal = "none": nobody is told.
  io_.exec.reopen_signal = 0;
  sup_.reload(2'000);
  for (const auto& [pid, w] : std::map<pid_t, WorkerInfo>(sup_.workers()))
    if (w.generation == 2) sup_.notice(pid, "READY=1", 2'100);
  for (const auto& [pid, w] : std::map<pid_t, WorkerInfo>(sup_.workers()))
    if (w.generation == 1) sup_.worker_exited(pid, 0, 0, 2'200);
  io_.signals.clear();
  sup_.signal(SIGUSR1, 3'000);
  EXPECT_EQ(io_.reopen_told, 0u);
  for (int slot = 0; slot < 2; ++slot) EXPECT_TRUE(io_.signals_to(sup_.worker_of(slot)).empty());
}

TEST_F(SupervisorExec, AProgramThatExitsAtOnceBacksOffInsteadOfSpinning) {
  ASSERT_TRUE(sup_.start(0));
  // A bad command line: every start exits within milliseconds, before READY=1.
  std::uint64_t now = 0;
  for (int round = 0; round < 40; ++round) {
    if (pid_t pid = sup_.worker_of(0)) sup_.worker_exited(pid, 2, 0, now);
    now += 50;
    sup_.tick(now);
  }
  // 2 s of a crash loop: the first restart is immediate, then 100, 200, 400,
  // 800 ms... so a handful of starts, not one every 50 ms.
  EXPECT_LE(io_.spawns, 2 + 7);
  EXPECT_GE(sup_.supervisor().crash_loops(), 1u);
}

TEST_F(SupervisorExec, AReloadSwitchesBetweenBuiltInWorkersAndPrograms) {
  const ExecConfig programs = io_.exec;
  io_.exec = ExecConfig{};
  ASSERT_TRUE(sup_.start(0));
  sup_.ready_all(0);
  const pid_t builtin = sup_.worker_of(0);
  EXPECT_FALSE(info(builtin).exec);
  io_.exec = programs;
  sup_.reload(1'000);
  for (const auto& [pid, w] : std::map<pid_t, WorkerInfo>(sup_.workers()))
    if (w.generation == 2) {
      EXPECT_TRUE(w.exec);
      sup_.notice(pid, "READY=1", 1'100);
    }
  EXPECT_EQ(sup_.serving_generation(), 2u);
  EXPECT_EQ(io_.retired.size(), 2u) << "built-in workers retire by IPC, as always";
  EXPECT_TRUE(io_.signals_to(builtin).empty());
}

}  // namespace
}  // namespace preforkd
