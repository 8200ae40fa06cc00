// Pre-spawned workers (prespawn) with the real binary: a reload is served by the
// spares that waited for it, with the configuration read at the reload (never one
// from before), the pool is refilled afterwards, and spares never outlive the
// master, never count as workers or crashes, and are discarded by USR2's
// successor start and by `prespawn = false`.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "tests/integration/harness.hpp"

using namespace itest;

namespace {

using Clock = std::chrono::steady_clock;
using Pids = std::vector<pid_t>;

Pids sorted(Pids pids) {
  std::sort(pids.begin(), pids.end());
  return pids;
}

// Waits until the master has exactly n idle spares; returns them (sorted).
Pids wait_spares(const Preforkd& server, std::size_t n, Millis timeout = 10s) {
  for (auto deadline = Clock::now() + timeout; Clock::now() < deadline; std::this_thread::sleep_for(10ms)) {
    Pids spares = spares_of(server.master_pid());
    if (spares.size() == n) return sorted(spares);
  }
  return sorted(spares_of(server.master_pid()));
}

bool all_gone(const Pids& pids, Millis timeout) {
  for (pid_t pid : pids)
    if (!wait_gone(pid, timeout)) return false;
  return true;
}

TEST(SpareLifecycle, AReloadIsServedByTheSparesWithTheConfigurationReadAtTheReload) {
  Preforkd server({.workers = 2});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  const Pids first = sorted(server.worker_pids());
  const Pids spares = wait_spares(server, 2);
  ASSERT_EQ(spares.size(), 2u) << server.log();
  // The spares were exec'd after generation 1 started, with no socket and no
  // configuration: the reload's config is one they have never seen.
  ASSERT_EQ(run_command("mkdir -p '" + server.dir() + "/www2'"), 0);
  write_file(server.dir() + "/www2/hello.txt", "the second root\n");
  std::string config = read_file(server.config_path());
  auto at = config.find("root = \"www\"");
  ASSERT_NE(at, std::string::npos);
  config.replace(at, 12, "root = \"www2\"");
  write_file(server.config_path(), config);

  ASSERT_TRUE(server.signal(SIGHUP));
  ASSERT_TRUE(server.wait_log("retiring generation 1", 10s)) << server.log();
  ASSERT_TRUE(server.wait_workers(2, 10s)) << server.log();
  EXPECT_EQ(sorted(server.worker_pids()), spares) << server.log();
  for (int i = 0; i < 20; ++i) {
    auto r = http_get(server.http_port(), "/hello.txt");
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "the second root\n");
  }
  // A started spare shows as the worker it became.
  for (pid_t pid : spares) {
    std::string cmdline = read_file("/proc/" + std::to_string(pid) + "/cmdline");
    EXPECT_EQ(cmdline.rfind(std::string("preforkd: worker\0", 17), 0), 0u) << cmdline;
    EXPECT_NE(cmdline.find(std::string("--generation\0" "2\0", 15)), std::string::npos) << cmdline;
  }
  EXPECT_TRUE(all_gone(first, 10s));
  // The pool is refilled once generation 2 serves, with new processes.
  Pids again = wait_spares(server, 2);
  ASSERT_EQ(again.size(), 2u) << server.log();
  for (pid_t pid : again) EXPECT_EQ(std::count(spares.begin(), spares.end(), pid), 0);
  EXPECT_EQ(count_of(server.log(), "exited unexpectedly"), 0u) << server.log();
}

TEST(SpareLifecycle, AKilledSpareIsNoCrashAndReloadsStillWork) {
  Preforkd server({.workers = 2});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  const Pids workers = sorted(server.worker_pids());
  Pids spares = wait_spares(server, 2);
  ASSERT_EQ(spares.size(), 2u) << server.log();
  ASSERT_EQ(kill(spares[0], SIGKILL), 0);
  ASSERT_TRUE(server.wait_log("spare worker " + std::to_string(spares[0]) + " exited before it was used", 5s))
      << server.log();
  EXPECT_EQ(sorted(server.worker_pids()), workers);
  EXPECT_EQ(count_of(server.log(), "exited unexpectedly"), 0u) << server.log();
  // The pool stops until a reload succeeds; the reload spawns its workers itself.
  EXPECT_TRUE(all_gone(spares, 5s)) << server.log();
  ASSERT_TRUE(server.signal(SIGHUP));
  ASSERT_TRUE(server.wait_log("retiring generation 1", 10s)) << server.log();
  auto r = http_get(server.http_port(), "/hello.txt");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(wait_spares(server, 2).size(), 2u) << server.log();
}

TEST(SpareLifecycle, SparesGoWithTheMasterOnQuitTermAndKill) {
  for (int how : {SIGQUIT, SIGTERM, SIGKILL}) {
    Preforkd server({.workers = 2});
    std::string why;
    ASSERT_TRUE(server.start(10s, &why)) << why;
    Pids spares = wait_spares(server, 2);
    ASSERT_EQ(spares.size(), 2u) << server.log();
    ASSERT_TRUE(server.signal(how));
    if (how != SIGKILL) {
      auto code = server.wait_exit(15s);
      ASSERT_TRUE(code.has_value()) << server.log();
      EXPECT_EQ(*code, 0) << server.log();
    }
    // SIGKILL: a spare sees its end of the IPC pipe close and exits by itself.
    EXPECT_TRUE(all_gone(spares, 5s)) << "signal " << how << "\n" << server.log();
  }
}

TEST(SpareLifecycle, WithoutPrespawnThereAreNoSpares) {
  Preforkd server({.workers = 2, .top_config = "prespawn = false\n"});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  ASSERT_TRUE(server.signal(SIGHUP));
  ASSERT_TRUE(server.wait_log("retiring generation 1", 10s)) << server.log();
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(spares_of(server.master_pid()).empty());
  EXPECT_EQ(count_of(server.log(), "spare"), 0u) << server.log();
}

TEST(SpareLifecycle, UpgradeDiscardsTheOldMastersSpares) {
  Preforkd server({.workers = 2});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  const pid_t old_master = server.master_pid();
  Pids spares = wait_spares(server, 2);
  ASSERT_EQ(spares.size(), 2u) << server.log();
  ASSERT_TRUE(server.signal(SIGUSR2));
  // The old master will not reload while its successor runs: its spares go at once.
  EXPECT_TRUE(all_gone(spares, 10s)) << server.log();
  ASSERT_TRUE(server.wait_log("upgrade: new master", 10s)) << server.log();
  // auto hand-over: the old master exits, and the pid file names the new one.
  EXPECT_EQ(server.wait_exit(20s), std::optional<int>(0)) << server.log();
  std::string pid_text = read_file(server.pid_file());
  ASSERT_FALSE(pid_text.empty()) << server.log();
  const pid_t successor = std::stoi(pid_text);
  ASSERT_NE(successor, old_master);
  server.follow_master(successor);
  EXPECT_EQ(wait_spares(server, 2).size(), 2u) << server.log();  // the new master makes its own
  auto r = http_get(server.http_port(), "/hello.txt");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
}

}  // namespace
