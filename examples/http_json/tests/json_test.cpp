// json-server under preforkd's integration harness, with real clients: curl for
// each endpoint (including the thread-pool answer through a Deferred), wrk
// keep-alive through reloads, scaling and max_requests recycling with zero
// errors, and the counters in /metrics.
#include <gtest/gtest.h>

#include <iostream>
#include <regex>
#include <string>
#include <thread>

#include "tests/integration/harness.hpp"
#include "tests/integration/metrics_scrape.hpp"
#include "tests/integration/wrk.hpp"

using namespace itest;

namespace {

struct JsonServer {
  int port = free_port();
  int admin = free_port();
  Preforkd server;
  JsonServer(int workers, const std::string& keys = "", const std::string& top = "")
      : server({.workers = workers,
                .graceful_timeout = 5,
                .extra_config = "\n[admin]\naddress = \"127.0.0.1:" + std::to_string(admin) + "\"\n",
                .top_config = top,
                .listeners = "[[listen]]\nname = \"api\"\naddress = \"127.0.0.1:" + std::to_string(port) +
                             "\"\nprotocol = \"json-api\"\n" + keys}) {}
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port) + path; }
};

// curl's body, then its status line "HTTP NNN".
std::string curl(const std::string& args) {
  std::string out;
  run_command("curl -sS --max-time 5 -w '\\nHTTP %{http_code}' " + args, &out);
  return out;
}

TEST(JsonApi, EndpointsAnswerJson) {
  JsonServer api(2, "greeting = \"bonjour \\\"toi\\\"\"\nslow_ms = 50\n");
  std::string why;
  ASSERT_TRUE(api.server.start(10s, &why)) << why;
  std::string hello = curl("-i " + api.url("/api/hello"));
  EXPECT_NE(hello.find("Content-Type: application/json"), std::string::npos) << hello;
  EXPECT_TRUE(std::regex_search(hello, std::regex(R"(\{"greeting": "bonjour \\"toi\\"", "pid": \d+, "slot": [01], "generation": 1\})")))
      << hello;
  EXPECT_TRUE(hello.ends_with("HTTP 200")) << hello;
  EXPECT_EQ(curl("-d '[1, 2.5, 3]' " + api.url("/api/sum")), "{\"sum\": 6.5}\n\nHTTP 200");
  EXPECT_EQ(curl("-d '[]' " + api.url("/api/sum")), "{\"sum\": 0}\n\nHTTP 200");
  EXPECT_EQ(curl("-d 'nope' " + api.url("/api/sum")), "{\"error\": \"expected an array of numbers\"}\n\nHTTP 400");
  EXPECT_EQ(curl(api.url("/nope")), "{\"error\": \"not found\"}\n\nHTTP 404");
  EXPECT_TRUE(curl("-I " + api.url("/api/hello")).ends_with("HTTP 200"));
  // Answered from libuv's thread pool through a Deferred, while the worker serves on.
  auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(curl(api.url("/api/slow")), "{\"slept_ms\": 50}\n\nHTTP 200");
  EXPECT_GE(std::chrono::steady_clock::now() - started, 50ms);
  // The HTTP layer's limits apply to it as to the static files.
  EXPECT_TRUE(curl("-H 'X-Big: " + std::string(17000, 'x') + "' " + api.url("/api/hello")).ends_with("HTTP 431"));
}

TEST(JsonApi, ItsKeysAreValidatedWithTheLayersOwn) {
  std::string out;
  JsonServer slow(1, "slow_ms = 0\n");
  EXPECT_EQ(slow.server.run_cli("-t", &out), 1);
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(:\d+:11: listen\[1\]\.slow_ms: must be between 1 and 10000)"))) << out;
  JsonServer header(1, "max_header_size = 1\n");
  EXPECT_EQ(header.server.run_cli("-t", &out), 1);
  EXPECT_NE(out.find("listen[1].max_header_size: must be between 256 and 65536"), std::string::npos) << out;
  JsonServer root(1, "root = \"www\"\n");
  EXPECT_EQ(root.server.run_cli("-t", &out), 1);
  EXPECT_NE(out.find("listen[1].root: not allowed for protocol \"json-api\""), std::string::npos) << out;
}

TEST(JsonApi, KeepAliveClientsSeeNoErrorThroughReloadsScalingAndRecycling) {
  JsonServer api(2, "", "max_requests = 20000\nmax_requests_jitter = 5000\n");
  std::string why;
  ASSERT_TRUE(api.server.start(10s, &why)) << why;
  Wrk wrk(api.port, 16, 8, /*keep_alive=*/true, api.server.dir(), "/api/hello");
  std::this_thread::sleep_for(500ms);
  ASSERT_TRUE(reload_and_scale(api.server, 2, 5, &why)) << why;
  bool recycled = api.server.wait_log("ready; retiring worker", 6s);
  ASSERT_TRUE(wrk.finish()) << wrk.output();
  std::string slow = curl(api.url("/api/slow"));
  std::string log = api.server.log();
  std::cout << "[ figures  ] json-api: wrk keep-alive " << wrk.requests() << " requests, " << wrk.socket_errors()
            << " socket errors, " << wrk.non_2xx() << " non-2xx; 5 reloads + TTIN + TTOU, "
            << count_of(log, "ready; retiring worker") << " recycles\n";
  EXPECT_EQ(wrk.socket_errors(), 0) << wrk.output();
  EXPECT_EQ(wrk.non_2xx(), 0) << wrk.output();
  EXPECT_GT(wrk.requests(), 1000) << wrk.output();
  EXPECT_TRUE(recycled) << "max_requests recycled no worker:\n" << log;
  EXPECT_TRUE(slow.ends_with("HTTP 200")) << slow;
  EXPECT_EQ(log.find("exited unexpectedly"), std::string::npos) << log;
}

TEST(JsonApi, CountersReachMetrics) {
  JsonServer api(1);
  std::string why;
  ASSERT_TRUE(api.server.start(10s, &why)) << why;
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(curl(api.url("/api/hello")).ends_with("HTTP 200"));
  ASSERT_TRUE(curl(api.url("/api/slow")).ends_with("HTTP 200"));
  Metrics m;
  EXPECT_TRUE(wait_metrics(api.admin, 5s, [](const Metrics& x) {
    return x.value("preforkd_json_api_answers_total") == 6 && x.value("preforkd_json_api_pool_jobs_total") == 1 &&
           x.value("preforkd_requests_total") == 6;
  }, &m)) << m.text;
}

}  // namespace
