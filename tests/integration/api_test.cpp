// The protocol API from outside: probe-server (tests/integration/probe_server.cpp),
// an application built on libpreforkd.so alone, run as the real binary. Hooks run
// in the worker, after the privilege drop, in order, and again on reload; the
// listener's keys reach the factory; counters reach /metrics and never go
// backwards; on_retire lets a line protocol close without losing a line; a bad
// key is refused with FILE:LINE:COL by the application's own -t.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/harness.hpp"
#include "tests/integration/metrics_scrape.hpp"

using namespace itest;

namespace {

struct ProbeServer {
  int port = free_port();
  int admin = free_port();
  Preforkd server;
  explicit ProbeServer(const std::string& probe_keys = "", ServerOptions options = {})
      : server(with(std::move(options), port, admin, probe_keys)) {}
  static ServerOptions with(ServerOptions o, int port, int admin, const std::string& keys) {
    o.binary = PROBE_BINARY;
    o.extra_config += "\n[[listen]]\nname = \"probe\"\naddress = \"127.0.0.1:" + std::to_string(port) +
                      "\"\nprotocol = \"probe\"\n" + keys + "\n[admin]\naddress = \"127.0.0.1:" +
                      std::to_string(admin) + "\"\n";
    return o;
  }
};

// Sends lines on one connection and reads one answer line per line sent.
std::string converse(int fd, const std::string& lines, std::size_t answers, Millis timeout = 3s) {
  if (!send_all(fd, lines)) return "(send failed)";
  std::string got;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  while (std::count(got.begin(), got.end(), '\n') < static_cast<long>(answers) &&
         std::chrono::steady_clock::now() < deadline) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  return got;
}

std::vector<std::string> lines_with(const std::string& log, const std::string& needle) {
  std::vector<std::string> out;
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line))
    if (line.find(needle) != std::string::npos) out.push_back(line);
  return out;
}

// The pid the log line was written by (the third field).
pid_t writer(const std::string& line) {
  std::istringstream in(line);
  std::string time, level;
  long pid = 0;
  in >> time >> level >> pid;
  return static_cast<pid_t>(pid);
}

TEST(ProtocolApi, HooksRunInEachWorkerAfterThePrivilegeDropInOrder) {
  ProbeServer p("", {.workers = 2, .user = "nobody"});
  std::string why;
  ASSERT_TRUE(p.server.start(10s, &why)) << why;
  std::string log = p.server.log();
  auto starts = lines_with(log, "probe: start ");
  ASSERT_EQ(starts.size(), 2u) << log;
  auto workers = p.server.worker_pids();
  for (const std::string& line : starts) {
    pid_t pid = writer(line);
    EXPECT_NE(pid, p.server.master_pid()) << "hooks run in workers only: " << line;
    EXPECT_NE(std::find(workers.begin(), workers.end(), pid), workers.end()) << line;
    EXPECT_NE(line.find("uid=65534 euid=65534"), std::string::npos) << "after the drop to nobody: " << line;
    EXPECT_NE(line.find("generation=1 retiring=0"), std::string::npos) << line;
    // The factory runs after the start hook, in the same worker.
    auto handler = log.find("probe: handler pid=" + std::to_string(pid));
    ASSERT_NE(handler, std::string::npos) << log;
    EXPECT_GT(handler, log.find(line)) << "factory before start hook:\n" << log;
  }
  EXPECT_EQ(lines_with(log, "probe: handler pid=").size(), 2u) << "one handler per listener per worker";
  // The hook's timer runs on the worker's loop.
  ASSERT_TRUE(p.server.wait_log("probe: first tick", 5s, 2)) << p.server.log();

  ASSERT_TRUE(p.server.signal(SIGHUP));
  ASSERT_TRUE(p.server.wait_log("probe: exit pid=", 10s, 2)) << p.server.log();
  ASSERT_TRUE(p.server.wait_workers(2, 10s));
  log = p.server.log();
  for (pid_t old : workers) {
    const std::string pid = "pid=" + std::to_string(old);
    auto retire = log.find("probe: retire " + pid), destroyed = log.find("probe: handler destroyed " + pid),
         exit = log.find("probe: exit " + pid);
    ASSERT_NE(retire, std::string::npos) << log;
    ASSERT_NE(destroyed, std::string::npos) << log;
    ASSERT_NE(exit, std::string::npos) << log;
    EXPECT_LT(retire, destroyed) << log;
    EXPECT_LT(destroyed, exit) << "handlers go before the exit hook:\n" << log;
    EXPECT_NE(log.find("probe: retire " + pid + " retiring=1 ticked=1"), std::string::npos)
        << "the loop timer ticked and retiring() is true:\n" << log;
  }
  EXPECT_EQ(lines_with(log, "generation=2 retiring=0").size(), 2u) << log;
  // An exit hook that left a handle open would show here: the loop must close.
  EXPECT_EQ(log.find("uv_loop_close"), std::string::npos) << log;
  EXPECT_EQ(log.find("exited unexpectedly"), std::string::npos) << log;
}

TEST(ProtocolApi, ListenerKeysReachTheFactoryTyped) {
  ProbeServer p("greeting = \"yo\"\nshout = true\nmax_lines = 7\nlinger = \"1m30s\"\ndata_file = \"d/x\"\n",
                {.workers = 1});
  std::string why;
  ASSERT_TRUE(p.server.start(10s, &why)) << why;
  EXPECT_TRUE(p.server.wait_log("greeting=yo max_lines=7 shout=1 linger=90 data_file=" + p.server.dir() + "/d/x", 2s))
      << p.server.log();
  int fd = connect_tcp("127.0.0.1", p.port);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(converse(fd, "abc\n", 1), "YO ABC\n");
  close(fd);
}

TEST(ProtocolApi, ABadKeyIsRefusedWithItsPositionByTheApplicationsOwnTest) {
  ProbeServer p("max_lines = \"lots\"\n", {.workers = 1});
  std::string out;
  EXPECT_EQ(p.server.run_cli("-t", &out), 1) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex(p.server.config_path() + R"(:\d+:13: listen\[4\]\.max_lines: expected integer)")))
      << out;
  ProbeServer q("shuot = true\n", {.workers = 1});
  EXPECT_EQ(q.server.run_cli("-t", &out), 1) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(:\d+:1: listen\[4\]\.shuot: unknown key)"))) << out;
  ProbeServer r("root = \"www\"\n", {.workers = 1});
  EXPECT_EQ(r.server.run_cli("-t", &out), 1) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(listen\[4\]\.root: not allowed for protocol "probe")"))) << out;
}

TEST(ProtocolApi, ARegistrationErrorStopsTheBinaryAtOnce) {
  ProbeServer p("", {.workers = 1});
  std::string out;
  EXPECT_EQ(run_command("PROBE_REGISTER_TWICE=1 '" PROBE_BINARY "' -t -c '" + p.server.config_path() + "'", &out), 1)
      << out;
  EXPECT_NE(out.find("cannot register protocol \"probe\": registered twice"), std::string::npos) << out;
}

TEST(ProtocolApi, CountersAndGaugesReachMetricsAndNeverGoBackwards) {
  ProbeServer p("", {.workers = 2});
  std::string why;
  ASSERT_TRUE(p.server.start(10s, &why)) << why;
  std::vector<int> fds;
  for (int c = 0; c < 3; ++c) {
    int fd = connect_tcp("127.0.0.1", p.port);
    ASSERT_GE(fd, 0);
    fds.push_back(fd);
    std::string lines;
    for (int i = 0; i < 10; ++i) lines += "line " + std::to_string(i) + "\n";
    ASSERT_EQ(std::count_if(lines.begin(), lines.end(), [](char ch) { return ch == '\n'; }), 10);
    std::string got = converse(fd, lines, 10);
    EXPECT_EQ(std::count(got.begin(), got.end(), '\n'), 10) << got;
  }
  Metrics m;
  EXPECT_TRUE(wait_metrics(p.admin, 5s, [](const Metrics& x) {
    return x.value("preforkd_probe_lines_total") == 30 && x.value("preforkd_probe_open") == 3;
  }, &m)) << m.text;
  EXPECT_NE(m.text.find("# TYPE preforkd_probe_lines_total counter"), std::string::npos) << m.text;
  EXPECT_NE(m.text.find("# HELP preforkd_probe_open Probe connections open now.\n# TYPE preforkd_probe_open gauge"),
            std::string::npos)
      << m.text;
  // The lines count as the worker's requests too (max_requests, preforkd_requests_total).
  EXPECT_GE(m.value("preforkd_requests_total"), 30) << m.text;
  for (int fd : fds) close(fd);
  EXPECT_TRUE(wait_metrics(p.admin, 5s, [](const Metrics& x) { return x.value("preforkd_probe_open") == 0; }, &m))
      << m.text;
  // The workers that counted them retire; the count stays. The reload goes through
  // the application's own -s, which must recognise its master by its own name.
  std::string out;
  ASSERT_EQ(p.server.run_cli("-s reload", &out), 0) << out;
  ASSERT_TRUE(p.server.wait_log("probe: exit pid=", 10s, 2)) << p.server.log();
  EXPECT_TRUE(wait_metrics(p.admin, 5s, [](const Metrics& x) {
    return x.value("preforkd_serving_generation") == 2 && x.value("preforkd_probe_lines_total") == 30;
  }, &m)) << m.text;
}

TEST(ProtocolApi, OnRetireLetsALineProtocolCloseWithoutLosingALine) {
  ProbeServer p("", {.workers = 1});
  std::string why;
  ASSERT_TRUE(p.server.start(10s, &why)) << why;
  int idle = connect_tcp("127.0.0.1", p.port);
  int busy = connect_tcp("127.0.0.1", p.port);
  ASSERT_TRUE(idle >= 0 && busy >= 0);
  ASSERT_EQ(converse(idle, "a\n", 1), "hi a\n");
  ASSERT_EQ(converse(busy, "b\n", 1), "hi b\n");
  ASSERT_TRUE(send_all(busy, "par"));  // a line in progress when retirement begins
  std::this_thread::sleep_for(100ms);
  ASSERT_TRUE(p.server.signal(SIGHUP));
  ASSERT_TRUE(p.server.wait_log("probe: retire", 10s)) << p.server.log();
  auto idle_end = wait_closed(idle, 5s);
  ASSERT_TRUE(idle_end.has_value()) << "an idle connection is told and closed";
  EXPECT_EQ(*idle_end, "bye\n");
  ASSERT_TRUE(send_all(busy, "tial\n"));
  auto busy_end = wait_closed(busy, 5s);
  ASSERT_TRUE(busy_end.has_value());
  EXPECT_EQ(*busy_end, "hi partial\nbye\n") << "the line in progress is answered first";
  close(idle);
  close(busy);
}

}  // namespace
