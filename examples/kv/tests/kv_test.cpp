// kv-server under preforkd's integration harness: the protocol and max_keys, the
// config key validated with FILE:LINE:COL, the counters in /metrics, and reloads,
// scaling and max_requests recycling under load with every command checked.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <iostream>
#include <regex>
#include <thread>
#include <vector>

#include "tests/integration/harness.hpp"
#include "tests/integration/metrics_scrape.hpp"

using namespace itest;

namespace {

struct KvServer {
  int port = free_port();
  int admin = free_port();
  Preforkd server;
  KvServer(int workers, const std::string& keys = "", const std::string& top = "")
      : server({.workers = workers,
                .graceful_timeout = 5,
                .extra_config = "\n[admin]\naddress = \"127.0.0.1:" + std::to_string(admin) + "\"\n",
                .top_config = top,
                .listeners = "[[listen]]\nname = \"kv\"\naddress = \"127.0.0.1:" + std::to_string(port) +
                             "\"\nprotocol = \"kv\"\n" + keys}) {}
};

// One line from fd (buffered in *carry); "" on EOF, error or timeout.
std::string read_line(int fd, std::string* carry, Millis timeout = 5s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::size_t end;
  while ((end = carry->find('\n')) == std::string::npos) {
    auto left = std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) return "";
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(std::min<long long>(left, 100))) <= 0) continue;
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return "";
    carry->append(buf, static_cast<std::size_t>(n));
  }
  std::string line = carry->substr(0, end);
  carry->erase(0, end + 1);
  return line;
}

struct Client {
  int fd = -1;
  std::string carry;
  explicit Client(int port) : fd(connect_tcp("127.0.0.1", port)) {}
  ~Client() {
    if (fd >= 0) close(fd);
  }
  std::string ask(const std::string& command) {
    if (!send_all(fd, command + "\n")) return "(send failed)";
    return read_line(fd, &carry);
  }
};

TEST(Kv, CommandsAndMaxKeys) {
  KvServer kv(1, "max_keys = 2\n");
  std::string why;
  ASSERT_TRUE(kv.server.start(10s, &why)) << why;
  Client c(kv.port);
  ASSERT_GE(c.fd, 0);
  EXPECT_EQ(c.ask("SET a 1"), "OK");
  EXPECT_EQ(c.ask("SET b two words"), "OK");
  EXPECT_EQ(c.ask("SET c 3"), "ERROR full (max_keys 2)");
  EXPECT_EQ(c.ask("SET a 11"), "OK") << "replacing a key needs no room";
  EXPECT_EQ(c.ask("GET a"), "VALUE 11");
  EXPECT_EQ(c.ask("GET b"), "VALUE two words");
  EXPECT_EQ(c.ask("COUNT"), "COUNT 2");
  EXPECT_EQ(c.ask("DEL a"), "DELETED");
  EXPECT_EQ(c.ask("GET a"), "NOT_FOUND");
  EXPECT_EQ(c.ask("FROB"), "ERROR unknown command");
  EXPECT_EQ(c.ask("QUIT"), "BYE");
  EXPECT_TRUE(wait_closed(c.fd, 3s).has_value());
}

TEST(Kv, MaxKeysIsValidatedLikeEveryKey) {
  std::string out;
  KvServer zero(1, "max_keys = 0\n");
  EXPECT_EQ(zero.server.run_cli("-t", &out), 1) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(preforkd\.toml:\d+:12: listen\[1\]\.max_keys: must be between 1 and 10000000)")))
      << out;
  KvServer text(1, "max_keys = \"many\"\n");
  EXPECT_EQ(text.server.run_cli("-t", &out), 1) << out;
  EXPECT_NE(out.find("listen[1].max_keys: expected integer"), std::string::npos) << out;
  KvServer typo(1, "max_kyes = 5\n");
  EXPECT_EQ(typo.server.run_cli("-t", &out), 1) << out;
  EXPECT_NE(out.find("listen[1].max_kyes: unknown key"), std::string::npos) << out;
  KvServer good(1, "max_keys = 5\n");
  EXPECT_EQ(good.server.run_cli("-t", &out), 0) << out;
}

TEST(Kv, CountersReachMetrics) {
  KvServer kv(1, "max_keys = 1\n");
  std::string why;
  ASSERT_TRUE(kv.server.start(10s, &why)) << why;
  Client c(kv.port);
  EXPECT_EQ(c.ask("SET a 1"), "OK");
  EXPECT_EQ(c.ask("SET b 1"), "ERROR full (max_keys 1)");
  EXPECT_EQ(c.ask("GET a"), "VALUE 1");
  Metrics m;
  EXPECT_TRUE(wait_metrics(kv.admin, 5s, [](const Metrics& x) {
    return x.value("preforkd_kv_commands_total") == 3 && x.value("preforkd_kv_rejected_total") == 1 &&
           x.value("preforkd_kv_keys") == 1;
  }, &m)) << m.text;
}

// Client threads, each on its own connection: SET k v then GET k (the same
// worker answers both), every answer checked. BYE (a retiring worker) means the
// pair goes again on a new connection; anything else unexpected is a failure.
class KvLoad {
 public:
  KvLoad(int port, int threads) {
    for (int t = 0; t < threads; ++t) threads_.emplace_back([this, port, t] { run(port, t); });
  }
  ~KvLoad() { stop(); }
  void stop() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  long ok() const { return ok_; }
  long failures() const { return failures_; }
  long byes() const { return byes_; }
  std::string sample() const {
    std::lock_guard lock(mutex_);
    return sample_;
  }

 private:
  void run(int port, int t) {
    std::unique_ptr<Client> c;
    for (long i = 0; !stop_; ++i) {
      if (!c) c = std::make_unique<Client>(port);
      if (c->fd < 0) {
        fail("connect failed");
        c.reset();
        continue;
      }
      const std::string key = "k" + std::to_string(t) + "_" + std::to_string(i % 500);
      const std::string value = "v" + std::to_string(i);
      std::string set = c->ask("SET " + key + " " + value);
      std::string get = set == "OK" ? c->ask("GET " + key) : "";
      if (set == "BYE" || get == "BYE") {
        ++byes_;
        c.reset();
        --i;  // the same pair again, on a new connection
        continue;
      }
      if (set != "OK" || get != "VALUE " + value) {
        fail("SET " + key + " -> \"" + set + "\", GET -> \"" + get + "\"");
        c.reset();
        continue;
      }
      ++ok_;
    }
  }
  void fail(const std::string& what) {
    if (stop_) return;  // abandoned at the end: neither way
    ++failures_;
    std::lock_guard lock(mutex_);
    if (sample_.size() < 2000) sample_ += what + "\n";
  }
  std::atomic<bool> stop_{false};
  std::atomic<long> ok_{0}, failures_{0}, byes_{0};
  mutable std::mutex mutex_;
  std::string sample_;
  std::vector<std::thread> threads_;
};

TEST(Kv, ReloadScaleAndRecycleUnderLoadLoseNothing) {
  KvServer kv(2, "", "max_requests = 4000\nmax_requests_jitter = 1000\n");
  std::string why;
  ASSERT_TRUE(kv.server.start(10s, &why)) << why;
  KvLoad load(kv.port, 4);
  std::this_thread::sleep_for(500ms);
  ASSERT_TRUE(reload_and_scale(kv.server, 2, 5, &why)) << why;
  // Some more seconds of load for max_requests to recycle workers (a command is a request).
  bool recycled = kv.server.wait_log("ready; retiring worker", 8s);
  std::this_thread::sleep_for(500ms);
  load.stop();
  std::string log = kv.server.log();
  std::cout << "[ figures  ] kv: " << load.ok() * 2 << " commands ok (" << load.ok() << " SET+GET pairs), "
            << load.failures() << " failed, " << load.byes() << " BYE reconnects, 5 reloads + TTIN + TTOU, "
            << count_of(log, "ready; retiring worker") << " recycles\n";
  EXPECT_EQ(load.failures(), 0) << load.sample();
  EXPECT_GT(load.ok(), 500);
  EXPECT_GT(load.byes(), 0) << "retirements reached the clients";
  EXPECT_TRUE(recycled) << "max_requests recycled no worker:\n" << log;
  EXPECT_EQ(log.find("exited unexpectedly"), std::string::npos) << log;
}

}  // namespace
