// wrk, the HTTP load generator, run in the background against a test server: its
// output goes to a file and its summary (requests, socket errors, non-2xx) is
// parsed at the end. Killed by pid if it outlives its duration by far (it stops
// by itself after -d), so a failing test leaves no wrk behind.
#pragma once

#include <sys/types.h>

#include <string>

namespace itest {

class Wrk {
 public:
  // keep_alive false: every request carries `Connection: close`.
  Wrk(int port, int connections, int seconds, bool keep_alive, const std::string& dir,
      const std::string& path = "/hello.txt");
  ~Wrk();
  Wrk(const Wrk&) = delete;
  Wrk& operator=(const Wrk&) = delete;
  // Waits for wrk to end (bounded) and parses its summary; false unless it exited 0.
  bool finish();
  long requests() const { return requests_; }
  long socket_errors() const { return socket_errors_; }
  long non_2xx() const { return non_2xx_; }
  const std::string& output() const { return text_; }

 private:
  static inline int count_ = 0;
  int seconds_;
  std::string output_, text_;
  pid_t pid_ = -1;
  bool done_ = false, exited_ok_ = false;
  long requests_ = 0, socket_errors_ = 0, non_2xx_ = 0;
};

}  // namespace itest
