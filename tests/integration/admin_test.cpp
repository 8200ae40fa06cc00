// The admin endpoint (/metrics, /status) and `preforkd status` against the real
// binary: the exposition is checked by the reference Prometheus parser (Python
// prometheus_client), and its values against what the test did to the server.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

#include "tests/integration/harness.hpp"
#include "tests/integration/metrics_scrape.hpp"

using namespace itest;

namespace {

// Runs the exposition through prometheus_client's parser; its canonical sample
// lines, or an error (with the parser's complaint) in *why.
bool reference_parse(const Preforkd& server, const std::string& text, std::string* canonical, std::string* why) {
  std::string file = server.dir() + "/metrics.txt";
  write_file(file, text);
  int rc = run_command("/usr/bin/python3 '" PREFORKD_SOURCE_DIR "/tests/integration/parse_metrics.py' < '" + file + "'",
                       canonical);
  if (rc != 0) *why = "prometheus_client rejected the exposition (exit " + std::to_string(rc) + "): " + *canonical +
                      "\n--- exposition ---\n" + text;
  return rc == 0;
}

ServerOptions with_admin(int admin_port, ServerOptions options = {}) {
  options.extra_config += "\n[admin]\naddress = \"127.0.0.1:" + std::to_string(admin_port) + "\"\n";
  return options;
}

void break_config(const Preforkd& server) {
  write_file(server.config_path(), read_file(server.config_path()) + "\nthis is not toml\n");
}

TEST(Admin, MetricsParseWithPrometheusClientAndCountRequests) {
  int admin = free_port();
  Preforkd server(with_admin(admin, {.workers = 2}));
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  constexpr int kRequests = 25;
  for (int i = 0; i < kRequests; ++i) {
    auto r = http_get(server.http_port(), "/hello.txt");
    ASSERT_TRUE(r && r->status == 200);
  }
  Metrics m;
  // Workers report every second: allow a few heartbeats of lag.
  ASSERT_TRUE(wait_metrics(admin, 5s, [&](const Metrics& x) {
    return x.sum("preforkd_worker_requests_total") >= kRequests;
  }, &m)) << m.text;
  std::string canonical;
  ASSERT_TRUE(reference_parse(server, m.text, &canonical, &why)) << why;
  EXPECT_NE(canonical.find("preforkd_build_info{version=\"" PREFORKD_VERSION "\"} 1.0"), std::string::npos) << canonical;
  EXPECT_GE(m.value("preforkd_requests_total"), kRequests);
  EXPECT_GE(m.value("preforkd_accepted_connections_total"), kRequests);
  EXPECT_EQ(m.count("preforkd_worker_requests_total"), 2u) << m.text;
  for (pid_t w : server.worker_pids())
    EXPECT_EQ(m.count("preforkd_worker_requests_total", "pid=\"" + std::to_string(w) + "\""), 1u) << m.text;
  EXPECT_EQ(m.value("preforkd_generation_workers", "generation=\"1\""), 2);
  EXPECT_EQ(m.value("preforkd_generation_state", "generation=\"1\",state=\"serving\""), 1);
  double start = m.value("preforkd_master_start_time_seconds");
  EXPECT_NEAR(start, static_cast<double>(time(nullptr)), 30);
  std::cout << "[ metrics  ] excerpt:\n";
  std::istringstream in(m.text);
  std::string line;
  while (std::getline(in, line))
    if (line.find("requests_total") != std::string::npos || line.find("build_info") != std::string::npos)
      std::cout << "    " << line << "\n";
}

// Totals never go backwards across a reload (retired workers' counters are kept);
// generation labels, reload results and restarts follow what was done.
TEST(Admin, CountersFollowReloadsFailedReloadsAndCrashes) {
  int admin = free_port();
  Preforkd server(with_admin(admin, {.workers = 2}));
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  constexpr int kRequests = 10;
  for (int i = 0; i < kRequests; ++i) ASSERT_TRUE(http_get(server.http_port(), "/hello.txt"));
  Metrics m;
  ASSERT_TRUE(wait_metrics(admin, 5s, [&](const Metrics& x) { return x.value("preforkd_requests_total") >= kRequests; }, &m))
      << m.text;
  EXPECT_EQ(m.value("preforkd_reloads_total", "result=\"ok\""), 0);
  double before = m.value("preforkd_requests_total");

  ASSERT_TRUE(server.signal(SIGHUP));
  ASSERT_TRUE(server.wait_log("retiring generation 1", 10s)) << server.log();
  ASSERT_TRUE(wait_metrics(admin, 5s, [&](const Metrics& x) {
    return x.count("preforkd_worker_requests_total", "generation=\"1\"") == 0 &&
           x.count("preforkd_worker_requests_total", "generation=\"2\"") == 2;
  }, &m)) << "generation 1 workers should be gone, generation 2 serving:\n" << m.text;
  EXPECT_EQ(m.value("preforkd_serving_generation"), 2);
  EXPECT_EQ(m.value("preforkd_reloads_total", "result=\"ok\""), 1);
  EXPECT_GE(m.value("preforkd_requests_total"), before) << "a counter went backwards across the reload";
  EXPECT_EQ(m.count("preforkd_generation_workers", "generation=\"1\""), 0u) << m.text;

  std::string good = read_file(server.config_path());
  break_config(server);
  ASSERT_TRUE(server.signal(SIGHUP));
  ASSERT_TRUE(wait_metrics(admin, 5s, [&](const Metrics& x) {
    return x.value("preforkd_reloads_total", "result=\"failed\"") == 1;
  }, &m)) << m.text;
  EXPECT_EQ(m.value("preforkd_reloads_total", "result=\"ok\""), 1);
  EXPECT_EQ(m.value("preforkd_serving_generation"), 2);
  write_file(server.config_path(), good);

  EXPECT_EQ(m.value("preforkd_worker_restarts_total"), 0);
  auto workers = server.worker_pids();
  ASSERT_FALSE(workers.empty());
  ASSERT_EQ(kill(workers[0], SIGKILL), 0);
  ASSERT_TRUE(wait_metrics(admin, 5s, [&](const Metrics& x) {
    return x.value("preforkd_worker_restarts_total") == 1 && x.count("preforkd_worker_requests_total") == 2 &&
           x.count("preforkd_worker_requests_total", "pid=\"" + std::to_string(workers[0]) + "\"") == 0;
  }, &m)) << m.text;
  EXPECT_GE(m.value("preforkd_requests_total"), before) << "a killed worker's requests must stay counted";
  EXPECT_EQ(m.value("preforkd_crash_loops_total"), 0);
  std::string canonical;
  EXPECT_TRUE(reference_parse(server, m.text, &canonical, &why)) << why;
}

TEST(Admin, StatusJsonDescribesMasterAndWorkers) {
  int admin = free_port();
  Preforkd server(with_admin(admin, {.workers = 2}));
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  auto r = http_get(admin, "/status");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("Content-Type"), "application/json");
  EXPECT_NE(r->body.find("\"master_pid\": " + std::to_string(server.master_pid())), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("\"version\": \"" PREFORKD_VERSION "\""), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("\"last_reload\": null"), std::string::npos) << r->body;
  for (pid_t w : server.worker_pids())
    EXPECT_NE(r->body.find("\"pid\": " + std::to_string(w)), std::string::npos) << r->body;
  // The JSON is valid for a real parser too.
  std::string file = server.dir() + "/status.json", out;
  write_file(file, r->body);
  EXPECT_EQ(run_command("/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); "
                        "assert len(d[\"workers\"])==2 and all(w[\"state\"]==\"ready\" for w in d[\"workers\"])' '" +
                            file + "'",
                        &out),
            0)
      << out << r->body;
}

// The master must answer scrapes promptly whatever clients do: a client that never
// finishes its request, garbage, oversize requests, other methods and paths.
TEST(Admin, BadClientsGetErrorsAndCannotStallTheMaster) {
  int admin = free_port();
  Preforkd server(with_admin(admin, {.workers = 1}));
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  int idle = connect_tcp("127.0.0.1", admin);
  ASSERT_GE(idle, 0);
  ASSERT_TRUE(send_all(idle, "GET /metr"));
  auto started = std::chrono::steady_clock::now();
  auto ok = http_get(admin, "/metrics");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
  EXPECT_EQ(http_get(admin, "/metrics", "", "POST")->status, 405);
  EXPECT_EQ(http_get(admin, "/nope")->status, 404);
  int fd = connect_tcp("127.0.0.1", admin);
  ASSERT_TRUE(send_all(fd, "NOT HTTP AT ALL\r\n\r\n"));
  std::string reply = read_until_close(fd);
  close(fd);
  EXPECT_EQ(reply.rfind("HTTP/1.1 400 ", 0), 0u) << reply;
  fd = connect_tcp("127.0.0.1", admin);
  ASSERT_TRUE(send_all(fd, "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(16 * 1024, 'a')));
  reply = read_until_close(fd);
  close(fd);
  EXPECT_EQ(reply.rfind("HTTP/1.1 431 ", 0), 0u) << reply.substr(0, 100);
  // The half-sent request is dropped by the master's timeout, not kept forever.
  std::string rest = read_until_close(idle, 10s);
  EXPECT_EQ(rest, "") << "an incomplete request gets no answer";
  close(idle);
}

// Off by default; `preforkd status` then asks the control socket (on by default).
TEST(Admin, OffByDefault) {
  Preforkd server({.workers = 1});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  EXPECT_EQ(server.log().find("admin endpoint"), std::string::npos) << server.log();
  std::string out;
  EXPECT_EQ(server.run_cli("status", &out), 0) << out;
  EXPECT_NE(out.find("master " + std::to_string(server.master_pid()) + ", preforkd "), std::string::npos) << out;
}

TEST(Admin, StatusWithNeitherAdminNorControlSocketSaysSo) {
  Preforkd server({.workers = 1, .top_config = "control_socket = \"\""});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  std::string out;
  EXPECT_EQ(server.run_cli("status", &out), 3) << out;
  EXPECT_NE(out.find("status needs the control socket or the admin endpoint, and both are off"), std::string::npos)
      << out;
}

// --- preforkd status ---------------------------------------------------------------

TEST(StatusCommand, PrintsTheTableAlsoDuringAReload) {
  int admin = free_port();
  Preforkd server(with_admin(admin, {.workers = 2, .graceful_timeout = 20}));
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  std::string out;
  ASSERT_EQ(server.run_cli("status", &out), 0) << out;
  EXPECT_NE(out.find("master " + std::to_string(server.master_pid()) + ", preforkd " PREFORKD_VERSION), std::string::npos)
      << out;
  EXPECT_NE(out.find("last reload: none"), std::string::npos) << out;
  for (pid_t w : server.worker_pids()) EXPECT_NE(out.find(" " + std::to_string(w) + " "), std::string::npos) << out;
  // Both argument orders.
  ASSERT_EQ(run_command(std::string(PREFORKD_BINARY) + " status -c '" + server.config_path() + "'", &out), 0) << out;

  // An open tcp-echo connection keeps its generation-1 worker draining after the
  // reload, so the table shows both generations at once.
  int echo = connect_tcp("127.0.0.1", server.echo_port());
  ASSERT_GE(echo, 0);
  ASSERT_TRUE(send_all(echo, "x"));
  char byte;
  ASSERT_EQ(recv(echo, &byte, 1, 0), 1);
  ASSERT_TRUE(server.signal(SIGHUP));
  // Status keeps answering while the reload runs.
  int runs = 0;
  bool saw_draining = false;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline && !saw_draining) {
    ASSERT_EQ(server.run_cli("status", &out), 0) << out;
    ++runs;
    saw_draining = std::regex_search(out, std::regex(R"(\n\d+ +\d+ +1 +draining )")) &&
                   std::regex_search(out, std::regex(R"(\n\d+ +\d+ +2 +ready )")) &&
                   out.find("last reload: ok (generation 2)") != std::string::npos;
  }
  EXPECT_TRUE(saw_draining) << "after " << runs << " runs:\n" << out << server.log();
  std::cout << "[ status   ] `preforkd status` during a reload:\n" << out;
  close(echo);
  ASSERT_TRUE(server.wait_workers(2, 10s));

  // A failed reload shows as such.
  std::string good = read_file(server.config_path());
  break_config(server);
  ASSERT_TRUE(server.signal(SIGHUP));
  ASSERT_TRUE(server.wait_log("reload failed", 5s)) << server.log();
  write_file(server.config_path(), good);
  ASSERT_EQ(server.run_cli("status", &out), 0) << out;
  EXPECT_NE(out.find("reloads: 1 ok, 1 failed; last reload: failed (generation 2)"), std::string::npos) << out;
}

TEST(StatusCommand, ClearErrorWhenNoMasterAnswers) {
  int admin = free_port();
  Preforkd server(with_admin(admin, {.workers = 1}));  // written, never started
  std::string out;
  EXPECT_EQ(server.run_cli("status", &out), 1) << out;
  EXPECT_NE(out.find("no running master answers on 127.0.0.1:" + std::to_string(admin)), std::string::npos) << out;
}

TEST(Cli, VersionAndHelp) {
  std::string out;
  EXPECT_EQ(run_command(std::string(PREFORKD_BINARY) + " --version", &out), 0);
  EXPECT_EQ(out, "preforkd " PREFORKD_VERSION "\n");
  EXPECT_EQ(run_command(std::string(PREFORKD_BINARY) + " --help", &out), 0);
  for (const char* expected : {"-c,--config", "-s,--signal", "-t,--test", "--version", "status"})
    EXPECT_NE(out.find(expected), std::string::npos) << expected << "\n" << out;
  EXPECT_EQ(out.find("--worker"), std::string::npos) << "internal options stay hidden\n" << out;
}

}  // namespace
