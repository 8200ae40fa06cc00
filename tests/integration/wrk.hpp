// wrk, the real HTTP load client, in the background: its output in a file, its
// summary parsed (requests, socket errors, non-2xx). Killed by pid if it outlives
// its duration by far (it stops by itself after -d). WrkSeries: short runs back
// to back, for load that lasts exactly as long as a sequence of operator actions
// whose duration is not known in advance.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>

namespace itest {

class Wrk {
 public:
  // keep_alive false: every request carries `Connection: close`.
  Wrk(int port, int connections, int seconds, bool keep_alive, const std::string& dir,
      const std::string& path = "/hello.txt", int threads = 2);
  ~Wrk();
  Wrk(const Wrk&) = delete;
  Wrk& operator=(const Wrk&) = delete;
  // Waits for wrk to end (bounded) and parses its summary; false unless it exited 0.
  bool finish();
  long requests() const { return requests_; }
  long socket_errors() const { return socket_errors_; }  // connect + read + write + timeout
  // The connections that never reached a server, and the answers that never came.
  long connect_errors() const { return connect_errors_; }
  long timeouts() const { return timeouts_; }
  long non_2xx() const { return non_2xx_; }
  const std::string& output() const { return text_; }

 private:
  static inline int count_ = 0;
  int seconds_;
  std::string output_, text_;
  pid_t pid_ = -1;
  bool done_ = false, exited_ok_ = false;
  long requests_ = 0, socket_errors_ = 0, connect_errors_ = 0, timeouts_ = 0, non_2xx_ = 0;
};

// wrk runs of `slice_seconds` each, one after the other, until stop(); the
// counts add up. Between two runs no request is in flight.
class WrkSeries {
 public:
  WrkSeries(int port, int connections, bool keep_alive, const std::string& dir, int slice_seconds = 2,
            const std::string& path = "/hello.txt");
  ~WrkSeries();
  // Ends the series once the current run is over; false if a run did not end cleanly.
  bool stop();
  long requests() const { return requests_; }
  long socket_errors() const { return socket_errors_; }
  long connect_errors() const { return connect_errors_; }
  long timeouts() const { return timeouts_; }
  long non_2xx() const { return non_2xx_; }
  int runs() const { return runs_; }
  // The output of the first run with an error (else of the last run).
  std::string output() const;

 private:
  std::atomic<bool> stop_{false};
  std::atomic<long> requests_{0}, socket_errors_{0}, connect_errors_{0}, timeouts_{0}, non_2xx_{0};
  std::atomic<int> runs_{0};
  std::atomic<bool> clean_{true};
  mutable std::mutex mutex_;
  std::string output_;
  bool kept_error_output_ = false;
  std::thread thread_;
};

}  // namespace itest
