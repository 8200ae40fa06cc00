// What the supervisor reports for metrics and systemd: reload results (through
// a Notify effect, reload_finished), crash and crash-loop counts, slot restarts kept
// across reloads.
#include <gtest/gtest.h>

#include <csignal>
#include <string>
#include <vector>

#include "master/supervisor.hpp"
#include "tests/unit/supervisor_driver.hpp"

namespace preforkd {
namespace {

class RecordingControl : public FakeIo {
 public:
  int prepare_generation(unsigned) override { return count; }
  pid_t spawn(int, unsigned) override { return next_pid++; }
  void signal(pid_t, int) override {}
  void retire(pid_t, bool) override {}
  void serving(unsigned, int) override {}
  void generation_gone(unsigned) override {}
  void worker_gone(pid_t) override {}
  void set_timer(std::uint64_t) override {}
  void all_stopped() override {}
  void reload_finished(unsigned generation, bool ok, bool pending) override {
    results.push_back(std::to_string(generation) + (ok ? " ok" : " failed") + (pending ? " (pending)" : ""));
  }

  int count = 2;
  pid_t next_pid = 100;
  std::vector<std::string> results;
};

class SupervisorReporting : public ::testing::Test {
 protected:
  SupervisorReporting() : sup_(ctl_, options()) {}
  static SupervisorOptions options() {
    SupervisorOptions o;
    o.backoff.base_ms = 100;
    o.backoff.cap_ms = 1000;
    o.backoff.healthy_after_ms = 10'000;
    o.backoff.crash_loop_after = 3;
    return o;
  }
  void ready_all(std::uint64_t now) { sup_.ready_all(now); }
  pid_t worker_of(int slot) const { return sup_.worker_of(slot); }

  RecordingControl ctl_;
  SupervisorDriver sup_;
};

TEST_F(SupervisorReporting, ReloadResultsAreReportedOnceEach) {
  ASSERT_TRUE(sup_.start(0));
  ready_all(0);
  EXPECT_TRUE(ctl_.results.empty()) << "the first start is not a reload";
  sup_.reload(10);
  ready_all(20);
  ctl_.count = 0;  // the next configuration is invalid
  sup_.reload(30);
  EXPECT_EQ(ctl_.results, (std::vector<std::string>{"2 ok", "2 failed"}));
  EXPECT_EQ(sup_.reloads_ok(), 1u);
  EXPECT_EQ(sup_.reloads_failed(), 1u);
}

TEST_F(SupervisorReporting, AQueuedReloadIsReportedAsPendingFirst) {
  ASSERT_TRUE(sup_.start(0));
  ready_all(0);
  sup_.reload(10);
  sup_.reload(11);  // queued behind generation 2
  ready_all(20);    // 2 serves, 3 starts at once
  ready_all(30);
  EXPECT_EQ(ctl_.results, (std::vector<std::string>{"2 ok (pending)", "3 ok"}));
}

TEST_F(SupervisorReporting, AWorkerDyingDuringStartFailsTheReload) {
  ASSERT_TRUE(sup_.start(0));
  ready_all(0);
  sup_.reload(10);
  pid_t starting = 0;
  for (const auto& [pid, w] : sup_.workers())
    if (w.generation == 2) starting = pid;
  sup_.worker_exited(starting, 1, 0, 20);
  EXPECT_EQ(ctl_.results, (std::vector<std::string>{"1 failed"}));
  EXPECT_EQ(sup_.worker_crashes(), 0u) << "a failed start is a failed reload, not a crash";
}

TEST_F(SupervisorReporting, CrashesCrashLoopsAndRestartsSurvivingReloads) {
  ASSERT_TRUE(sup_.start(0));
  ready_all(0);
  std::uint64_t now = 100;
  // Three quick crashes of slot 1: the third is a crash loop (crash_loop_after = 3).
  for (int i = 0; i < 3; ++i) {
    pid_t pid = worker_of(1);
    ASSERT_NE(pid, 0);
    sup_.worker_exited(pid, -1, SIGKILL, now);
    now += 2'000;
    sup_.tick(now);  // past any backoff: restarted
    ready_all(now);
  }
  EXPECT_EQ(sup_.worker_crashes(), 3u);
  EXPECT_EQ(sup_.crash_loops(), 1u);
  unsigned restarts = sup_.slots()[1].restarts;
  EXPECT_EQ(restarts, 3u);
  // A retired (asked-to-stop) worker is not a crash.
  sup_.reload(now);
  ready_all(now + 1);
  for (const auto& [pid, w] : std::map<pid_t, WorkerInfo>(sup_.workers()))
    if (w.state == WorkerState::retiring) sup_.worker_exited(pid, 0, 0, now + 2);
  EXPECT_EQ(sup_.worker_crashes(), 3u);
  EXPECT_EQ(sup_.slots()[1].restarts, restarts) << "restarts of a slot are kept across reloads";
  EXPECT_EQ(sup_.slots()[0].restarts, 0u);
}

}  // namespace
}  // namespace preforkd
