// Zero-downtime reload and supervision with the real binary under real load:
// every connection and datagram sent during reload storms, scaling, and worker
// deaths is checked, and the expected count of failures is zero.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <regex>
#include <set>
#include <thread>

#include "tests/integration/harness.hpp"
#include "tests/integration/load_client.hpp"

using namespace itest;

namespace {

// Sends `reloads` SIGHUPs `gap` apart, each waiting for the previous generation to
// be promoted first (so every reload is its own generation), while load runs.
void reload_storm(Preforkd& server, int reloads, Millis gap, const std::function<void(int)>& before_each = {}) {
  for (int i = 0; i < reloads; ++i) {
    if (before_each) before_each(i);
    ASSERT_TRUE(server.signal(SIGHUP));
    ASSERT_TRUE(server.wait_log("retiring generation", 10s, static_cast<std::size_t>(i + 1)))
        << "reload " << i + 1 << " did not complete\n" << server.log();
    std::this_thread::sleep_for(gap);
  }
}

void expect_only_generation(const Preforkd& server, int generation, std::size_t workers) {
  ASSERT_TRUE(server.wait_workers(workers, 15s)) << server.log();
  for (pid_t w : server.worker_pids()) {
    std::string cmd = read_file("/proc/" + std::to_string(w) + "/cmdline");
    std::replace(cmd.begin(), cmd.end(), '\0', ' ');
    EXPECT_NE(cmd.find("--generation " + std::to_string(generation) + " "), std::string::npos)
        << "leftover worker " << w << ": " << cmd;
  }
}

TEST(Reload, StormUnderHttpTcpAndUdpLoadLosesNothing) {
  Preforkd server({.workers = 2});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  LoadClient http(LoadClient::Kind::http_close, "127.0.0.1", server.http_port(), 2);
  LoadClient echo(LoadClient::Kind::tcp_echo, "127.0.0.1", server.echo_port(), 1);
  LoadClient udp(LoadClient::Kind::udp_echo, "127.0.0.1", server.echo_port(), 1);
  reload_storm(server, 50, 100ms);
  std::this_thread::sleep_for(200ms);
  http.stop();
  echo.stop();
  udp.stop();
  std::cout << "[ figures  ] 50 reloads: http " << http.ok() << " ok / " << http.errors() << " failed, tcp-echo "
            << echo.ok() << " / " << echo.errors() << ", udp-echo " << udp.ok() << " / " << udp.errors() << "\n";
  EXPECT_EQ(http.errors(), 0) << http.error_sample();
  EXPECT_EQ(echo.errors(), 0) << echo.error_sample();
  EXPECT_EQ(udp.errors(), 0) << udp.error_sample();
  EXPECT_GT(http.ok(), 500);
  EXPECT_GT(echo.ok(), 100);
  EXPECT_GT(udp.ok(), 100);
  EXPECT_EQ(count_of(server.log(), "retiring generation"), 50u);
  expect_only_generation(server, 51, 2);
}

// Every reload changes the worker count 2 <-> 3: slot 2's socket joins and leaves
// its reuseport group each time, steered away before it closes.
TEST(Reload, StormAlternatingWorkerCountLosesNothing) {
  Preforkd server({.workers = 2});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  LoadClient http(LoadClient::Kind::http_close, "127.0.0.1", server.http_port(), 2);
  LoadClient udp(LoadClient::Kind::udp_echo, "127.0.0.1", server.echo_port(), 1);
  reload_storm(server, 30, 100ms, [&](int i) { server.set_workers(i % 2 == 0 ? 3 : 2); });
  std::this_thread::sleep_for(500ms);
  http.stop();
  udp.stop();
  std::cout << "[ figures  ] 30 reloads 2<->3: http " << http.ok() << " ok / " << http.errors() << " failed, udp "
            << udp.ok() << " / " << udp.errors() << "\n";
  EXPECT_EQ(http.errors(), 0) << http.error_sample();
  EXPECT_EQ(udp.errors(), 0) << udp.error_sample();
  EXPECT_GT(http.ok(), 300);
  expect_only_generation(server, 31, 2);
}

TEST(Reload, BadConfigChangesNothingAndTheNextGoodOneWorks) {
  Preforkd server({.workers = 2});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  auto before = server.worker_pids();
  std::sort(before.begin(), before.end());
  std::string good = read_file(server.config_path());
  write_file(server.config_path(), good + "\n[[listen]]\naddress = \"127.0.0.1:1\"\nprotocol = \"smtp\"\n");
  LoadClient http(LoadClient::Kind::http_close, "127.0.0.1", server.http_port(), 1);
  ASSERT_TRUE(server.signal(SIGHUP));
  ASSERT_TRUE(server.wait_log("reload failed", 5s)) << server.log();
  std::smatch where;
  std::string log = server.log();
  EXPECT_TRUE(std::regex_search(log, where, std::regex(R"(preforkd\.toml:\d+:\d+: listen\[4\]\.protocol: unknown protocol)")))
      << log;
  std::this_thread::sleep_for(300ms);
  auto after = server.worker_pids();
  std::sort(after.begin(), after.end());
  EXPECT_EQ(after, before) << "the serving generation was touched";
  // A listener whose port is taken fails the reload the same way.
  write_file(server.config_path(), good);
  ASSERT_TRUE(server.signal(SIGHUP));
  ASSERT_TRUE(server.wait_log("generation 3: all 2 workers ready; retiring generation 1", 10s)) << server.log();
  http.stop();
  EXPECT_EQ(http.errors(), 0) << http.error_sample();
  EXPECT_GT(http.ok(), 10);
  expect_only_generation(server, 3, 2);
}

// A reload whose workers never become ready is abandoned; the old ones serve on.
TEST(Reload, AGenerationThatCannotStartIsAbandoned) {
  std::string flag = "/tmp/preforkd-itest-crash-" + std::to_string(getpid());
  Preforkd server({.workers = 2, .crash_if_exists = flag});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  auto before = server.worker_pids();
  std::sort(before.begin(), before.end());
  write_file(flag, "");
  ASSERT_TRUE(server.signal(SIGHUP));
  ASSERT_TRUE(server.wait_log("reload to generation 2 failed", 5s)) << server.log();
  unlink(flag.c_str());
  std::this_thread::sleep_for(200ms);
  auto after = server.worker_pids();
  std::sort(after.begin(), after.end());
  EXPECT_EQ(after, before);
  auto r = http_get(server.http_port(), "/hello.txt");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

// A reload to more workers binds the new slot's socket into its listener's
// reuseport group before any worker polls it. If the reload is then abandoned the
// socket is closed, and whatever the kernel queued on it meanwhile is reset: a
// failed reload must change nothing, so the new slot gets no connection before its
// worker is ready.
TEST(Reload, AnAbandonedReloadToMoreWorkersResetsNoConnection) {
  std::string flag = "/tmp/preforkd-itest-crash-grow-" + std::to_string(getpid());
  Preforkd server({.workers = 2, .crash_if_exists = flag});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  write_file(flag, "");
  server.set_workers(3);
  LoadClient http(LoadClient::Kind::http_close, "127.0.0.1", server.http_port(), 4);
  constexpr int kReloads = 20;
  for (int i = 0; i < kReloads; ++i) {
    ASSERT_TRUE(server.signal(SIGHUP));
    ASSERT_TRUE(server.wait_log("failed", 5s, static_cast<std::size_t>(i + 1))) << server.log();
    std::this_thread::sleep_for(20ms);
  }
  unlink(flag.c_str());
  http.stop();
  std::cout << "[ figures  ] " << kReloads << " abandoned reloads 2 -> 3 workers: http " << http.ok() << " ok / "
            << http.errors() << " failed\n";
  EXPECT_EQ(http.errors(), 0) << http.error_sample();
  EXPECT_GT(http.ok(), 100);
}

// Reloads sent faster than generations can start are coalesced, never lost: the
// last one always leads to a generation that serves the file as it was last written.
// Standard signals do not queue: two HUPs sent before the master runs are one
// HUP. So the second is sent only after the master has acted on the first; it
// lands either while generation 2 is starting (queued: "it will follow") or just
// after (a reload of its own). Either way it must not be lost: the config change
// it was sent for (3 workers) is what ends up serving. The queueing itself is
// unit-tested (SupervisorTest), where timing cannot decide the path.
TEST(Reload, ReloadsDuringAReloadAreCoalescedNotLost) {
  Preforkd server({.workers = 2});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  ASSERT_TRUE(server.signal(SIGHUP));
  ASSERT_TRUE(server.wait_log("reload: starting generation 2", 10s)) << server.log();
  server.set_workers(3);
  ASSERT_TRUE(server.signal(SIGHUP));
  ASSERT_TRUE(server.wait_log("generation 3: all 3 workers ready; retiring generation 2", 10s)) << server.log();
  ASSERT_TRUE(server.wait_workers(3, 10s)) << server.log();
  std::string log = server.log();
  std::cout << "[ figures  ] second HUP " << (count_of(log, "it will follow") ? "queued behind" : "arrived after")
            << " generation 2's start\n";
  EXPECT_EQ(count_of(log, "reload: starting generation"), 2u) << log;
}

// A USR1 right behind a HUP finds the new generation's workers starting. A worker
// signalled before it has installed its handlers dies of it ("exited during start
// (signal 10)") and fails the reload; it must get its USR1 once it is ready.
TEST(Reload, ReopenDuringAReloadFailsNoReload) {
  Preforkd server({.workers = 2});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  constexpr int kRounds = 10;
  for (int i = 0; i < kRounds; ++i) {
    ASSERT_TRUE(server.signal(SIGHUP));
    std::this_thread::sleep_for(2ms);
    ASSERT_TRUE(server.signal(SIGUSR1));
    // Done when promoted or failed; bounded at 10 s a round.
    bool done = false;
    for (int poll = 0; poll < 1000 && !done; ++poll) {
      std::string log = server.log();
      done = count_of(log, "retiring generation") + count_of(log, "reload to generation") >=
             static_cast<std::size_t>(i + 1);
      if (!done) std::this_thread::sleep_for(10ms);
    }
    ASSERT_TRUE(done) << "round " << i + 1 << " did not end\n" << server.log();
  }
  std::string log = server.log();
  std::cout << "[ figures  ] " << kRounds << " x (HUP, 2 ms, USR1): " << count_of(log, "retiring generation")
            << " reloads done, " << count_of(log, "reload to generation") << " failed\n";
  EXPECT_EQ(count_of(log, "reload to generation"), 0u) << log;
  EXPECT_EQ(count_of(log, "retiring generation"), static_cast<std::size_t>(kRounds));
  expect_only_generation(server, kRounds + 1, 2);
  auto r = http_get(server.http_port(), "/");
  ASSERT_TRUE(r.has_value());
}

TEST(Supervision, KilledWorkerUnderLoadIsReplacedQuickly) {
  Preforkd server({.workers = 2});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  LoadClient http(LoadClient::Kind::http_close, "127.0.0.1", server.http_port(), 2);
  std::this_thread::sleep_for(300ms);
  long total_errors = 0;
  std::vector<double> replace_ms;
  for (int round = 0; round < 5; ++round) {
    auto workers = server.worker_pids();
    ASSERT_EQ(workers.size(), 2u);
    std::size_t ready_lines = count_of(server.log(), "ready");
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(kill(workers[0], SIGKILL), 0);
    ASSERT_TRUE(server.wait_log("ready", 5s, ready_lines + 1)) << server.log();
    replace_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    // Longer than healthy_after (1 s): each kill hits a healthy worker, restarted at once.
    std::this_thread::sleep_for(1200ms);
  }
  http.stop();
  total_errors = http.errors();
  std::sort(replace_ms.begin(), replace_ms.end());
  std::cout << "[ figures  ] kill -9 of a worker: replacement ready in " << replace_ms.front() << " .. "
            << replace_ms.back() << " ms (median " << replace_ms[2] << "); failed requests " << total_errors << " of "
            << http.ok() + total_errors << "\n";
  // How fast is a benchmark figure (printed above; ~20 ms on a quiet machine). The
  // bound here only has to tell "restarted at once" from a stuck or backed-off
  // slot on a loaded 2-core CI machine or under ASan, where 150 ms has been seen;
  // the back-off schedule itself is unit-tested (SupervisorTest).
  EXPECT_LT(replace_ms[2], 1000.0) << "median time to a serving replacement";
  // Only connections the killed worker had already accepted can fail: at most the
  // two client threads' in-flight requests per kill.
  EXPECT_LE(total_errors, 2 * 5) << http.error_sample();
}

TEST(Supervision, AStoppedWorkerIsReplacedAfterWorkerTimeout) {
  Preforkd server({.workers = 2, .worker_timeout = 1});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  pid_t victim = server.worker_pids().at(0);
  ASSERT_EQ(kill(victim, SIGSTOP), 0);
  ASSERT_TRUE(server.wait_log("no heartbeat for", 5s)) << server.log();
  ASSERT_TRUE(wait_gone(victim, 3s));
  ASSERT_TRUE(server.wait_workers(2, 5s));
  auto now = server.worker_pids();
  EXPECT_EQ(std::count(now.begin(), now.end(), victim), 0);
  auto r = http_get(server.http_port(), "/hello.txt");
  ASSERT_TRUE(r && r->status == 200);
}

pid_t worker_of_slot(const Preforkd& server, int slot) {
  const std::string needle = std::string("--slot") + '\0' + std::to_string(slot) + '\0';
  for (pid_t w : server.worker_pids())
    if (read_file("/proc/" + std::to_string(w) + "/cmdline").find(needle) != std::string::npos) return w;
  return 0;
}

// 3 workers under Connection: close load, one stopped (SIGSTOP) for a few seconds:
// about 2 s after its last heartbeat its slot gets no new connections, so a fresh
// client is served at full speed by the other two; the connections queued on its
// socket meanwhile are answered once it continues (SIGCONT), and it is not killed.
void expect_hung_worker_steered_around(int hung_slot) {
  Preforkd server({.workers = 3, .worker_timeout = 20});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  const pid_t hung = worker_of_slot(server, hung_slot);
  ASSERT_GT(hung, 0) << server.log();
  auto measure = [&](long* errors) {
    LoadClient http(LoadClient::Kind::http_close, "127.0.0.1", server.http_port(), 4);
    std::this_thread::sleep_for(1500ms);
    http.stop();
    *errors = http.errors();
    return http.ok();
  };
  long errors_before = 0, errors_during = 0;
  const long before = measure(&errors_before);
  ASSERT_EQ(kill(hung, SIGSTOP), 0);
  const auto stopped_at = std::chrono::steady_clock::now();
  // Connections made right after the stop: about a third queue on the stopped
  // worker's socket, nobody else polls it.
  std::vector<int> early;
  const std::string request = "GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  for (int i = 0; i < 30; ++i) {
    int fd = connect_tcp("127.0.0.1", server.http_port());
    if (fd >= 0 && send_all(fd, request)) early.push_back(fd);
    else if (fd >= 0) close(fd);
  }
  const bool steered = server.wait_log("steering new connections away", 8s);
  const auto steered_ms =
      std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - stopped_at).count();
  const long during = measure(&errors_during);
  ASSERT_EQ(kill(hung, SIGCONT), 0);
  const bool back = server.wait_log("answers again", 5s);
  std::size_t answered = 0;
  for (int fd : early) {
    std::string carry;
    auto r = read_response(fd, &carry, false, 10s);
    answered += r && r->status == 200;
    close(fd);
  }
  std::cout << "[ figures  ] slot " << hung_slot << " stopped: steered away after " << steered_ms
            << " ms; fresh client 1.5 s: " << before << " ok before, " << during << " ok / " << errors_during
            << " failed while stopped; " << answered << " of " << early.size()
            << " connections queued on it answered after SIGCONT\n";
  EXPECT_TRUE(steered) << server.log();
  EXPECT_LT(steered_ms, 6000) << "about 2 s of silence, generous on a loaded machine";
  EXPECT_EQ(errors_before, 0);
  EXPECT_EQ(errors_during, 0);
  EXPECT_GT(during, before / 4) << "new connections must not queue behind the stopped worker";
  EXPECT_TRUE(back) << server.log();
  EXPECT_EQ(answered, early.size()) << "nothing queued on the stopped worker's socket is lost";
  EXPECT_FALSE(process_gone(hung)) << "not killed before worker_timeout";
}

TEST(Supervision, AStoppedLastSlotGetsNoNewConnectionsAndLosesNone) { expect_hung_worker_steered_around(2); }

// A hole in the set: slot 0 is silent, 1 and 2 receive (cBPF steering to any set).
TEST(Supervision, AStoppedFirstSlotGetsNoNewConnectionsAndLosesNone) {
  expect_hung_worker_steered_around(0);
}

TEST(Supervision, CrashLoopBacksOffAndRecovers) {
  std::string flag = "/tmp/preforkd-itest-crashloop-" + std::to_string(getpid());
  Preforkd server({.workers = 1, .crash_if_exists = flag});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  double cpu_before = server.master_cpu_seconds();
  write_file(flag, "");
  ASSERT_EQ(kill(server.worker_pids().at(0), SIGKILL), 0);
  ASSERT_TRUE(server.wait_log("crash loop", 10s)) << server.log();
  std::this_thread::sleep_for(3s);
  std::string log = server.log();
  std::regex delay(R"(crash loop: (\d+) consecutive failures; next start in (\d+) ms)");
  std::vector<long> delays;
  for (std::sregex_iterator it(log.begin(), log.end(), delay), end; it != end; ++it) delays.push_back(std::stol((*it)[2]));
  ASSERT_GE(delays.size(), 2u) << log;
  EXPECT_TRUE(std::is_sorted(delays.begin(), delays.end())) << log;
  EXPECT_GT(delays.back(), delays.front()) << "backoff grows";
  double cpu = server.master_cpu_seconds() - cpu_before;
  std::cout << "[ figures  ] crash loop: " << count_of(log, "exited unexpectedly") << " restarts, master CPU " << cpu
            << " s over ~5 s\n";
  EXPECT_LT(cpu, 0.5) << "the master must not spin";
  EXPECT_LT(count_of(log, "exited unexpectedly"), 15u) << log;
  unlink(flag.c_str());
  EXPECT_TRUE(server.wait_log("all 1 workers ready", 15s, 2)) << server.log();
}

TEST(Scaling, TtinAndTtouUnderLoadLoseNothing) {
  Preforkd server({.workers = 2});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  LoadClient http(LoadClient::Kind::http_close, "127.0.0.1", server.http_port(), 2);
  LoadClient udp(LoadClient::Kind::udp_echo, "127.0.0.1", server.echo_port(), 1);
  for (int round = 0; round < 5; ++round) {
    ASSERT_TRUE(server.signal(SIGTTIN));
    ASSERT_TRUE(server.wait_workers(3, 5s)) << server.log();
    std::this_thread::sleep_for(200ms);
    ASSERT_TRUE(server.signal(SIGTTOU));
    ASSERT_TRUE(server.wait_workers(2, 5s)) << server.log();
    std::this_thread::sleep_for(200ms);
  }
  ASSERT_TRUE(server.signal(SIGTTOU));
  ASSERT_TRUE(server.wait_workers(1, 5s)) << server.log();
  ASSERT_TRUE(server.signal(SIGTTOU));  // never below one
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(server.worker_pids().size(), 1u);
  http.stop();
  udp.stop();
  std::cout << "[ figures  ] TTIN/TTOU x5: http " << http.ok() << " ok / " << http.errors() << " failed, udp "
            << udp.ok() << " / " << udp.errors() << "\n";
  EXPECT_EQ(http.errors(), 0) << http.error_sample();
  EXPECT_EQ(udp.errors(), 0) << udp.error_sample();
  EXPECT_TRUE(server.wait_log("already at one worker", 1s)) << server.log();
}

}  // namespace
