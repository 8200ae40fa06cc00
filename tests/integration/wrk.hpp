// wrk, the real HTTP load client, in the background: its output in a file, its
// summary parsed (requests, socket errors, non-2xx). Killed by pid if it outlives
// its duration by far (it stops by itself after -d).
#pragma once

#include <sys/types.h>

#include <string>

namespace itest {

class Wrk {
 public:
  Wrk(int port, int connections, int seconds, bool keep_alive, const std::string& dir,
      const std::string& path = "/hello.txt");
  ~Wrk();
  Wrk(const Wrk&) = delete;
  Wrk& operator=(const Wrk&) = delete;
  // Waits for wrk to end (bounded) and parses its summary; false if it did not
  // exit cleanly.
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
