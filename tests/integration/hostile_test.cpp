// Hostile clients all at once against one worker, while a well-behaved client keeps
// fetching: slowloris connections, random garbage, half-closed requests and resets
// in the middle of a 1 MiB response. Every good request must succeed with normal
// latency, the worker must survive, and its memory must return near its baseline.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <thread>
#include <vector>

#include "tests/integration/harness.hpp"
#include "tests/integration/proc_stats.hpp"

using namespace itest;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kAttack = 4s;

void reset_close(int fd) {
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(fd);
}

struct Attack {
  int port;
  std::atomic<bool> stop{false};
  std::atomic<long> slowloris_closed{0}, garbage{0}, half_closed{0}, resets{0};

  // 40 connections trickling one header byte every 200 ms; reopened when closed.
  void slowloris() {
    std::vector<int> fds;
    while (!stop) {
      while (fds.size() < 40) {
        int fd = connect_tcp("127.0.0.1", port, 1s);
        if (fd < 0) break;
        send_all(fd, "GET /hello.txt HTTP/1.1\r\nHost: slow\r\n");
        fds.push_back(fd);
      }
      for (auto it = fds.begin(); it != fds.end();) {
        if (!send_all(*it, "X")) {
          close(*it);
          it = fds.erase(it);
          ++slowloris_closed;
        } else {
          ++it;
        }
      }
      std::this_thread::sleep_for(200ms);
    }
    for (int fd : fds) close(fd);
  }

  void random_garbage() {
    std::mt19937 rng(7);
    while (!stop) {
      int fd = connect_tcp("127.0.0.1", port, 1s);
      if (fd < 0) continue;
      std::string junk(1 + rng() % 8192, '\0');
      for (auto& c : junk) c = static_cast<char>(rng());
      send_all(fd, junk);
      (void)wait_closed(fd, 1s);  // read and discard until the peer closes
      close(fd);
      ++garbage;
      std::this_thread::sleep_for(5ms);
    }
  }

  // Half a request, then FIN; and a whole request, then FIN before reading.
  void half_close() {
    bool whole = false;
    while (!stop) {
      int fd = connect_tcp("127.0.0.1", port, 1s);
      if (fd < 0) continue;
      send_all(fd, whole ? "GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n" : "GET /hello.txt HTTP/1.1\r\nHo");
      shutdown(fd, SHUT_WR);
      (void)wait_closed(fd, 1s);  // read and discard until the peer closes
      close(fd);
      whole = !whole;
      ++half_closed;
      std::this_thread::sleep_for(5ms);
    }
  }

  // Starts a 1 MiB download, reads a little, then resets the connection.
  void reset_mid_response() {
    while (!stop) {
      int fd = connect_tcp("127.0.0.1", port, 1s);
      if (fd < 0) continue;
      if (send_all(fd, "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\nGET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")) {
        char buf[16384];
        recv(fd, buf, sizeof buf, 0);
      }
      reset_close(fd);
      ++resets;
      std::this_thread::sleep_for(5ms);
    }
  }
};

std::size_t connections_of(pid_t pid) { return socket_inodes_of(pid).size(); }

TEST(Hostile, GoodClientsAreServedDuringAnAttackAndMemoryReturnsToBaseline) {
  Preforkd server({.workers = 1,
                   .web_config = "header_timeout = 1\nidle_timeout = 1\nsend_timeout = 1\n"});
  write_file(server.root() + "/big.bin", std::string(1 << 20, 'B'));
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  pid_t worker = server.worker_pids().at(0);
  const int port = server.http_port();

  // Warm up (first allocations, the 1 MiB path), then take the baseline.
  for (int i = 0; i < 20; ++i) {
    auto r = http_get(port, i % 2 ? "/hello.txt" : "/big.bin");
    ASSERT_TRUE(r && r->status == 200) << i;
  }
  std::size_t idle_sockets = connections_of(worker);
  long rss_baseline = rss_kib(worker);

  Attack attack{.port = port};
  std::vector<std::thread> attackers;
  attackers.emplace_back([&] { attack.slowloris(); });
  attackers.emplace_back([&] { attack.random_garbage(); });
  attackers.emplace_back([&] { attack.half_close(); });
  attackers.emplace_back([&] { attack.reset_mid_response(); });

  std::vector<double> latencies_ms;
  long rss_peak = rss_baseline;
  int failures = 0;
  auto end = Clock::now() + kAttack;
  while (Clock::now() < end) {
    auto t0 = Clock::now();
    auto r = http_get(port, "/hello.txt");
    latencies_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    if (!r || r->status != 200 || r->body != "hello from preforkd\n") ++failures;
    rss_peak = std::max(rss_peak, rss_kib(worker));
    std::this_thread::sleep_for(10ms);
  }
  attack.stop = true;
  for (auto& t : attackers) t.join();

  std::sort(latencies_ms.begin(), latencies_ms.end());
  ASSERT_FALSE(latencies_ms.empty());
  double p50 = latencies_ms[latencies_ms.size() / 2];
  double p99 = latencies_ms[std::min(latencies_ms.size() - 1, latencies_ms.size() * 99 / 100)];
  std::printf("attack %lld s: slowloris closed by server %ld, garbage %ld, half-closed %ld, resets %ld\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::seconds>(kAttack).count()),
              attack.slowloris_closed.load(), attack.garbage.load(), attack.half_closed.load(),
              attack.resets.load());
  std::printf("good client: %zu GETs, %d failed, p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", latencies_ms.size(),
              failures, p50, p99, latencies_ms.back());
  EXPECT_EQ(failures, 0);
  EXPECT_LT(p99, 200.0);
  EXPECT_GT(attack.slowloris_closed.load(), 0) << "header_timeout never closed a slowloris connection";
  EXPECT_GT(attack.resets.load(), 0);

  // After the attack: the worker is the same process, its connections are gone
  // (attackers closed theirs; timeouts close what is left) and memory comes back.
  EXPECT_EQ(server.worker_pids(), std::vector<pid_t>{worker}) << "the worker died:\n" << server.log();
  auto deadline = Clock::now() + 5s;
  while (connections_of(worker) > idle_sockets && Clock::now() < deadline) std::this_thread::sleep_for(50ms);
  EXPECT_LE(connections_of(worker), idle_sockets) << "connections left open after the attack";
  long rss_after = rss_kib(worker);
  std::printf("worker VmRSS: baseline %ld KiB, peak %ld KiB, after %ld KiB\n", rss_baseline, rss_peak, rss_after);
  if (kSanitized) {
    std::printf("RSS bound not checked: ASan's quarantine keeps freed memory resident\n");
  } else {
    EXPECT_LT(rss_after - rss_baseline, 8 * 1024);
  }
  auto r = http_get(port, "/big.bin");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body.size(), 1u << 20);
}

}  // namespace
