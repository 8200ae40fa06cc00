// `preforkd -s reload --wait` with the real binary: the outcome and its exit
// code for a good config, a bad one (caught by the CLI, and by the master when
// only the master can see it), a port that cannot be bound, a worker that cannot
// start, a timeout; and the sequences around it: requests that coalesce, a stop
// that abandons the reload, the master dying while a client waits.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <future>
#include <regex>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/integration/busy_port.hpp"
#include "tests/integration/harness.hpp"
#include "tests/integration/unix_client.hpp"

using namespace itest;

namespace {

struct CliResult {
  int code = -1;
  std::string output;
};

// Runs the CLI against the server's config in the background.
std::future<CliResult> run_cli_async(const Preforkd& server, const std::string& args) {
  return std::async(std::launch::async, [&server, args] {
    CliResult result;
    result.code = server.run_cli(args, &result.output);
    return result;
  });
}

// Starts a server whose workers each take `delay_ms` to start (a test hook), so
// that "while a reload runs" is a window the test can act in.
bool start_slow(Preforkd& server, int delay_ms, std::string* why) {
  setenv("PREFORKD_TEST_WORKER_START_DELAY_MS", std::to_string(delay_ms).c_str(), 1);
  bool started = server.start(20s, why);
  unsetenv("PREFORKD_TEST_WORKER_START_DELAY_MS");
  return started;
}

TEST(ReloadWait, AGoodConfigReportsTheGenerationThatServes) {
  Preforkd server({.workers = 2});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  auto before = server.worker_pids();
  std::string out;
  EXPECT_EQ(server.run_cli("-s reload --wait", &out), 0) << out << server.log();
  EXPECT_EQ(out, "preforkd: reloaded: generation 2 serves\n");
  // Done means done: generation 2 serves by the time the command returns.
  EXPECT_TRUE(server.log().find("generation 2: all 2 workers ready") != std::string::npos) << server.log();
  auto r = http_get(server.http_port(), "/hello.txt");
  ASSERT_TRUE(r && r->status == 200);
  ASSERT_TRUE(server.wait_workers(2, 10s));
  for (pid_t w : server.worker_pids()) EXPECT_EQ(std::count(before.begin(), before.end(), w), 0);
}

// The CLI loads the config first (as every -s does), so a broken file is reported
// with FILE:LINE:COL and nothing is sent. A file that breaks between the CLI's
// check and the master's read fails in the master: the client gets the same text.
TEST(ReloadWait, ABadConfigIsReportedWithFileLineAndColumn) {
  Preforkd server({.workers = 2});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  std::string good = read_file(server.config_path());
  ASSERT_EQ(good.rfind("workers = 2\n", 0), 0u) << good;
  write_file(server.config_path(), "workers = \"many\"\n" + good.substr(good.find('\n') + 1));
  std::string out;
  EXPECT_EQ(server.run_cli("-s reload --wait", &out), 1) << out;
  const std::string error = server.config_path() + ":1:11: workers: expected integer or \"auto\"";
  EXPECT_EQ(out, "preforkd: " + error + "\n");
  EXPECT_EQ(count_of(server.log(), "control socket: reload"), 0u) << "the CLI sent nothing\n" << server.log();
  EXPECT_EQ(count_of(server.log(), "reload: "), 0u) << server.log();

  std::string answer = control_exchange(server.dir() + "/preforkd.sock", "{\"version\":1,\"command\":\"reload\"}\n");
  auto newline = answer.find('\n');
  ASSERT_NE(newline, std::string::npos) << answer;
  auto accepted = nlohmann::json::parse(answer.substr(0, newline), nullptr, false);
  auto finished = nlohmann::json::parse(answer.substr(newline + 1), nullptr, false);
  EXPECT_EQ(accepted.value("event", ""), "accepted") << answer;
  EXPECT_EQ(finished.value("event", ""), "finished") << answer;
  EXPECT_FALSE(finished.value("ok", true)) << answer;
  EXPECT_EQ(finished.value("error", ""), error) << answer;
  EXPECT_NE(server.log().find("reload: " + error), std::string::npos) << "the log has the same text\n" << server.log();
  write_file(server.config_path(), good);
}

// Only the master can find out that a port is taken: the CLI's check passes, the
// reload fails, and the client prints the bind error the log has.
TEST(ReloadWait, APortThatCannotBeBoundIsReported) {
  Preforkd server({.workers = 2});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  BusyPort busy;
  ASSERT_GT(busy.port(), 0);
  int port = busy.port();
  std::string good = read_file(server.config_path());
  write_file(server.config_path(), good + busy.listener());
  std::string out;
  EXPECT_EQ(server.run_cli("-s reload --wait", &out), 1) << out;
  const std::string error = "listener busy: bind 127.0.0.1:" + std::to_string(port) + ": Address already in use";
  EXPECT_EQ(out, "preforkd: reload failed: " + error + "\n");
  EXPECT_NE(server.log().find("reload: " + error), std::string::npos) << server.log();
  busy.release();
  write_file(server.config_path(), good);
  EXPECT_EQ(server.run_cli("-s reload --wait", &out), 0) << out;
}

// A worker of the new generation that exits before it is ready: the client is
// told which one and how it ended; the old generation keeps serving.
TEST(ReloadWait, AWorkerThatCannotStartIsNamed) {
  std::string crash_file = "/tmp/preforkd-itest-crash-" + std::to_string(getpid()) + "-" + std::to_string(free_port());
  Preforkd server({.workers = 2, .crash_if_exists = crash_file});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  auto serving = server.worker_pids();
  write_file(crash_file, "");
  std::string out;
  EXPECT_EQ(server.run_cli("-s reload --wait", &out), 1) << out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m,
                                std::regex("^preforkd: reload failed: reload to generation 2 failed: worker (\\d+) "
                                           "exited during start \\(status 70\\); generation 1 keeps serving\n$")))
      << out;
  // Whichever slot's worker failed first: started spares (prespawn) begin together.
  EXPECT_TRUE(std::regex_search(server.log(), std::regex(std::string(m[1]) + " worker slot=[0-9]+ gen=2: test hook")))
      << "the pid named is the worker that failed\n" << server.log();
  unlink(crash_file.c_str());
  auto r = http_get(server.http_port(), "/hello.txt");
  ASSERT_TRUE(r && r->status == 200);
  EXPECT_TRUE(server.wait_workers(2, 10s));
  for (pid_t w : serving) EXPECT_FALSE(process_gone(w)) << "generation 1 was touched";
}

TEST(ReloadWait, NoOutcomeInTimeExits3AndTheReloadGoesOn) {
  Preforkd server({.workers = 1});
  std::string why;
  ASSERT_TRUE(start_slow(server, 1500, &why)) << why;
  std::string out;
  EXPECT_EQ(server.run_cli("-s reload --wait --timeout 200ms", &out), 3) << out;
  EXPECT_NE(out.find("no outcome within 0.2s; the reload goes on in the master"), std::string::npos) << out;
  EXPECT_TRUE(server.wait_log("generation 2: all 1 workers ready", 10s)) << server.log();
}

// Three clients: A starts a reload; B and C ask while it runs. A is answered by
// generation 2; B and C by the one reload queued behind it (generation 3), which
// read the config after both asked.
TEST(ReloadWait, RequestsDuringAReloadCoalesceAndEachClientGetsAnOutcome) {
  Preforkd server({.workers = 1});
  std::string why;
  ASSERT_TRUE(start_slow(server, 800, &why)) << why;
  auto a = run_cli_async(server, "-s reload --wait");
  ASSERT_TRUE(server.wait_log("reload: starting generation 2", 5s)) << server.log();
  auto b = run_cli_async(server, "-s reload --wait");
  auto c = run_cli_async(server, "-s reload --wait");
  CliResult ra = a.get(), rb = b.get(), rc = c.get();
  EXPECT_EQ(ra.code, 0) << ra.output;
  EXPECT_EQ(ra.output, "preforkd: reloaded: generation 2 serves\n");
  for (const CliResult* r : {&rb, &rc}) {
    EXPECT_EQ(r->code, 0) << r->output;
    EXPECT_EQ(r->output,
              "preforkd: reloaded: generation 3 serves (the request waited for the reload in progress, then this one "
              "ran)\n");
  }
  EXPECT_EQ(count_of(server.log(), "reload: starting generation"), 2u) << server.log();
}

// `-s reload --wait` on a server whose workers start slowly, and `signum` to the
// master while the reload runs: what the client ends with.
CliResult wait_interrupted_by(Preforkd& server, int signum) {
  std::string why;
  if (!start_slow(server, 1500, &why)) return {-1, why};
  auto a = run_cli_async(server, "-s reload --wait");
  if (!server.wait_log("reload: starting generation 2", 5s)) return {-1, server.log()};
  server.signal(signum);
  return a.get();
}

TEST(ReloadWait, AStopAbandonsTheReloadAndTheClientIsTold) {
  Preforkd server({.workers = 1});
  CliResult r = wait_interrupted_by(server, SIGQUIT);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_EQ(r.output, "preforkd: reload failed: abandoned: the master is stopping (QUIT)\n");
  EXPECT_EQ(server.wait_exit(15s), std::optional<int>(0)) << server.log();
}

TEST(ReloadWait, TheMasterDyingWhileAClientWaitsFailsIt) {
  Preforkd server({.workers = 1});
  CliResult r = wait_interrupted_by(server, SIGKILL);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_EQ(r.output, "preforkd: the master closed the connection before the reload finished (did it exit?)\n");
}

TEST(ReloadWait, UsageErrors) {
  Preforkd server({.workers = 1});
  std::string out;
  EXPECT_EQ(server.run_cli("-s reload --timeout 1s", &out), 2) << out;
  EXPECT_EQ(out, "preforkd: --timeout needs --wait\n");
  EXPECT_EQ(server.run_cli("--wait", &out), 2) << out;
  EXPECT_EQ(server.run_cli("-s quit --wait", &out), 2) << out;
  EXPECT_EQ(out, "preforkd: --wait works with -s reload and -s upgrade, not \"quit\"\n");
  EXPECT_EQ(server.run_cli("-s reload --wait --timeout soon", &out), 2) << out;
  EXPECT_NE(out.find("preforkd: --timeout \"soon\": "), std::string::npos) << out;
  // No master: nothing to wait for.
  EXPECT_EQ(server.run_cli("-s reload --wait", &out), 1) << out;
  EXPECT_NE(out.find("no master answers on the control socket " + server.dir() + "/preforkd.sock"), std::string::npos)
      << out;
}

}  // namespace
