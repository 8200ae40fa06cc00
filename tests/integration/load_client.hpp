// A load generator for reload tests: threads that open a new connection (or send a
// datagram) per request as fast as they can and check every answer. Bounded: it
// runs until stop() or its own time limit.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/harness.hpp"

namespace itest {

class LoadClient {
 public:
  enum class Kind { http_close, tcp_echo, udp_echo };
  LoadClient(Kind kind, std::string host, int port, int threads, Millis limit = 120s);
  ~LoadClient();
  void stop();
  long ok() const { return ok_; }
  long errors() const { return errors_; }
  // The first few errors, for the failure message.
  std::string error_sample() const;

 private:
  void run(int index);
  bool one_http(int index);
  bool one_tcp_echo(int index);
  bool one_udp_echo(int index, int fd, long sequence);
  void record(const std::string& what);

  Kind kind_;
  std::string host_;
  int port_;
  std::chrono::steady_clock::time_point deadline_;
  std::atomic<bool> stop_{false};
  std::atomic<long> ok_{0}, errors_{0};
  mutable std::mutex mutex_;
  std::vector<std::string> samples_;
  std::vector<std::thread> threads_;
};

}  // namespace itest
