// The lifecycle torture test: a seeded random sequence of operator actions (HUP
// with and without config changes, USR2 that succeeds and fails, USR1, TTIN/TTOU,
// WINCH then HUP, kill -9 and SIGSTOP of a worker, max_requests recycling, CPU
// pinning switched on and off) under mixed load (keep-alive and `Connection:
// close` HTTP, TCP and UDP echo), ending with QUIT. After every step: the master
// lives, the pid file names it, the worker set matches the config, no worker died
// that the test did not kill, and fresh requests are answered. At the end: every
// request and datagram was answered except those in flight at a worker the test
// killed (counted, bounded), nothing is left running, and the log holds no
// sanitizer report.
//
// PREFORKD_TORTURE_SEED=N runs one seed; PREFORKD_TORTURE_STEPS=N sets the length
// of a sequence; PREFORKD_TORTURE_SECONDS=N runs new random seeds until the time is
// up. A failure prints the seed and the action list, which a regression case below
// replays with run_actions().
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "tests/integration/torture.hpp"

using namespace itest;
using namespace itest::torture;

namespace {
long env_long(const char* name, long fallback) {
  const char* value = std::getenv(name);
  return value && *value ? std::atol(value) : fallback;
}

// CI: a few fixed seeds, about two minutes in a normal build. Long local mode:
// PREFORKD_TORTURE_SECONDS of new random seeds, every failing seed listed.
TEST(Torture, SeededRandomLifecycleSequencesUnderMixedLoad) {
  long steps = env_long("PREFORKD_TORTURE_STEPS", 40);
  long seconds = env_long("PREFORKD_TORTURE_SECONDS", 0);
  std::vector<std::uint64_t> seeds = {1, 2, 3, 4, 5, 6};
  // PREFORKD_TORTURE_MIX="keepalive,close,tcp_echo,udp_echo" client threads (default 2,2,1,1).
  Mix mix;
  if (const char* m = std::getenv("PREFORKD_TORTURE_MIX"); m && *m)
    std::sscanf(m, "%d,%d,%d,%d", &mix.keepalive, &mix.close, &mix.tcp_echo, &mix.udp_echo);
  if (const char* one = std::getenv("PREFORKD_TORTURE_SEED"); one && *one) seeds = {std::strtoull(one, nullptr, 10)};
  auto until = Clock::now() + std::chrono::seconds(seconds);
  std::random_device entropy;
  long sequences = 0, actions = 0;
  std::vector<std::string> failed;
  // PREFORKD_TORTURE_ACTIONS="ttin winch_hup ..." replays exactly that list once.
  if (const char* list = std::getenv("PREFORKD_TORTURE_ACTIONS"); list && *list) {
    Torture torture(0, mix);
    torture.set_verbose(true);
    EXPECT_TRUE(torture.run(0, parse_actions(list)));
    return;
  }
  for (std::size_t i = 0; seconds > 0 ? Clock::now() < until : i < seeds.size(); ++i) {
    std::uint64_t seed = seconds > 0 ? (static_cast<std::uint64_t>(entropy()) << 20) ^ entropy() : seeds[i];
    std::cout << "[ seed     ] " << seed << "\n" << std::flush;
    Torture torture(seed, mix);
    bool good = torture.run(static_cast<int>(steps));
    ++sequences;
    actions += static_cast<long>(torture.actions().size());
    std::cout << "[ actions  ] " << (good ? "ok" : "FAILED") << ": " << describe(torture.actions()) << "\n"
              << std::flush;
    if (!good) failed.push_back(std::to_string(seed) + ": " + describe(torture.actions()));
  }
  std::cout << "[ figures  ] " << sequences << " sequence(s), " << actions << " action(s), " << failed.size()
            << " failed\n";
  for (const auto& f : failed) std::cout << "[ failed   ] " << f << "\n";
}

// --- Regression cases: short fixed sequences that failed ----------------------------

std::string repeat(const std::string& actions, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) out += actions + " ";
  return out;
}

// From the first random schedule: TTIN, then WINCH, then HUP (back to the
// config's count), 5 cycles, lost connections under `Connection: close` load.
TEST(TortureRegression, TtinThenWinchThenHupLosesNothing) {
  EXPECT_TRUE(run_actions(repeat("ttin_winch_hup", 5), {.keepalive = 0, .close = 4}));
}

// A failed binary upgrade, then one that should succeed: the master must survive
// the retry and hand over.
TEST(TortureRegression, Usr2AfterAFailedUsr2Succeeds) {
  EXPECT_TRUE(run_actions("usr2_fail usr2 usr2_fail usr2", {.keepalive = 0}));
}

// USR1 right behind a TTIN or a HUP reaches workers still starting: none may die of it.
TEST(TortureRegression, Usr1WhileWorkersStartKillsNone) {
  EXPECT_TRUE(run_actions(repeat("ttin_usr1 ttou hup_usr1", 4), {.keepalive = 0}));
}

// Plain reloads under keep-alive load: a request sent on a keep-alive connection
// must be answered, not reset or dropped by the retiring worker.
TEST(TortureRegression, KeepAliveRequestsSurviveReloads) {
  EXPECT_TRUE(run_actions(repeat("hup", 10), {.keepalive = 4, .close = 0, .tcp_echo = 0, .udp_echo = 0}));
}

// QUIT while a max_requests successor hangs before ready (SIGSTOPped): the master
// kills it after graceful_timeout and must then exit.
TEST(TortureRegression, QuitWhileARecycleSuccessorStartsExits) {
  EXPECT_TRUE(run_actions("hup_max_requests=300 quit_in_recycle", {.keepalive = 0}));
}

// The master stopped past worker_timeout, then continued: found by the long run
// on a starved machine (a master stalled 5-7 s killed every healthy worker for
// "no heartbeat"). Their heartbeats wait unread in its pipes; it must read them
// before it judges.
TEST(TortureRegression, AStalledMasterKillsNoHealthyWorker) {
  EXPECT_TRUE(run_actions("stop_master hup stop_master", {.keepalive = 0}));
}

}  // namespace

namespace {

// Found under ASan by the torture run (seed 2): when the master crashed, a worker
// serving keep-alive load stopped on EOF of its IPC pipe ("master closed the ipc
// channel") and then read freed memory. kill -9 of the master does the same: each
// worker must leave on its own, with no sanitizer report.
TEST(TortureRegression, WorkersLeaveCleanlyWhenTheMasterDies) {
  Preforkd server({.workers = 2});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  auto workers = server.worker_pids();
  {
    LoadClient keepalive(LoadClient::Kind::http_keepalive, "127.0.0.1", server.http_port(), 4);
    LoadClient close(LoadClient::Kind::http_close, "127.0.0.1", server.http_port(), 2);
    LoadClient echo(LoadClient::Kind::tcp_echo, "127.0.0.1", server.echo_port(), 1);
    std::this_thread::sleep_for(500ms);
    ASSERT_EQ(kill(server.master_pid(), SIGKILL), 0);
    for (pid_t w : workers) EXPECT_TRUE(wait_gone(w, 10s)) << "worker " << w << " outlived its master";
  }
  std::string log = server.log();
  for (const char* marker : {"AddressSanitizer", "runtime error:", "LeakSanitizer"})
    EXPECT_EQ(log.find(marker), std::string::npos) << "a worker reported \"" << marker << "\":\n" << log;
}

}  // namespace
