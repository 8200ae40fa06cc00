// A load generator for reload tests: threads that send request after request as
// fast as they can and check every answer. http_close, tcp_echo: a new connection
// per request; http_keepalive: one connection per thread, reused; udp_echo: one
// datagram at a time. Every error is classified and time-stamped, so a test can
// tell which failures fall in the window of a fault it caused. Bounded: it runs
// until stop() or its own time limit.
#pragma once

#include <array>
#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/harness.hpp"

namespace itest {

// Why one request or datagram failed, as the client saw it.
enum class ErrorClass { connect_refused, connect_other, reset, eof_mid_response, wrong_bytes, timeout, send, count };
const char* to_string(ErrorClass error);

struct LoadError {
  std::chrono::steady_clock::time_point started;  // when the request (its connect, for a new connection) began
  std::chrono::steady_clock::time_point when;     // when the client gave up on it
  ErrorClass what;
  std::string detail;
  // No answer had come on this connection yet (always so for one request per
  // connection): the connection may never have reached a worker.
  bool fresh_connection = true;
};

class LoadClient {
 public:
  enum class Kind { http_close, tcp_echo, udp_echo, http_keepalive };
  // answer_timeout: how long one answer may take before it counts as lost; zero
  // means the kind's default (5 s for TCP, 2 s for a datagram).
  LoadClient(Kind kind, std::string host, int port, int threads, Millis limit = 120s, Millis answer_timeout = 0ms);
  ~LoadClient();
  LoadClient(const LoadClient&) = delete;
  LoadClient& operator=(const LoadClient&) = delete;
  void stop();
  long ok() const { return ok_; }
  long errors() const { return errors_; }
  long errors(ErrorClass what) const { return by_class_[static_cast<std::size_t>(what)]; }
  // http_keepalive: connections the server closed while no request was outstanding
  // (after an answer with `Connection: close`, or an EOF seen before the next send).
  long reconnects() const { return reconnects_; }
  int threads() const { return static_cast<int>(threads_.size()); }
  Kind kind() const { return kind_; }
  // stop() does not wait for answers still outstanding: they count neither way.
  // The first few errors, for the failure message.
  std::string error_sample() const;
  // Every error so far (at most the first 100000), in no particular order.
  std::vector<LoadError> error_log() const;
  // "ok N, errors N (reset N, timeout N, ...)" for figures.
  std::string summary() const;

 private:
  void run(int index);
  bool one_http(int index);
  bool one_keepalive(int* fd, std::string* carry, bool* answered);
  bool one_tcp_echo(int index);
  bool one_udp_echo(int index, int fd, long sequence);
  void record(ErrorClass what, const std::string& detail, bool fresh_connection = true);

  Kind kind_;
  std::string host_;
  int port_;
  Millis answer_timeout_;
  std::chrono::steady_clock::time_point deadline_;
  std::atomic<bool> stop_{false};
  std::atomic<long> ok_{0}, errors_{0}, reconnects_{0};
  std::array<std::atomic<long>, static_cast<std::size_t>(ErrorClass::count)> by_class_{};
  mutable std::mutex mutex_;
  std::vector<std::string> samples_;
  std::vector<LoadError> error_log_;
  std::vector<std::thread> threads_;
};

}  // namespace itest
