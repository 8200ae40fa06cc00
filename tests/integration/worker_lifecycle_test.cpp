// A worker's life at its edges, with the real binary under real clients (wrk):
// TERM under load.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <regex>
#include <thread>

#include "tests/integration/harness.hpp"

using namespace itest;
using Clock = std::chrono::steady_clock;

namespace {

// wrk in the background, its output in a file; killed by pid if it outlives its
// duration by far (it stops by itself after -d).
class Wrk {
 public:
  Wrk(int port, int connections, int seconds, bool keep_alive, const std::string& dir) : seconds_(seconds) {
    output_ = dir + "/wrk." + std::to_string(port) + "." + std::to_string(++count_) + ".out";
    std::vector<std::string> args = {"wrk",  "-t2", "-c" + std::to_string(connections), "-d" + std::to_string(seconds) + "s",
                                     "--timeout", "5s"};
    if (!keep_alive) {
      args.push_back("-H");
      args.push_back("Connection: close");
    }
    args.push_back("http://127.0.0.1:" + std::to_string(port) + "/hello.txt");
    pid_ = fork();
    if (pid_ == 0) {
      int out = open(output_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(out, STDOUT_FILENO);
      dup2(out, STDERR_FILENO);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execvp("wrk", argv.data());
      _exit(127);
    }
  }
  ~Wrk() {
    if (pid_ > 0 && !done_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  // Waits for wrk to end (bounded) and parses its summary.
  bool finish() {
    auto deadline = Clock::now() + std::chrono::seconds(seconds_ + 15);
    while (!done_ && Clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        done_ = true;
        exited_ok_ = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      } else {
        std::this_thread::sleep_for(50ms);
      }
    }
    text_ = read_file(output_);
    std::smatch m;
    if (std::regex_search(text_, m, std::regex(R"((\d+) requests in)"))) requests_ = std::stol(m[1]);
    if (std::regex_search(text_, m, std::regex(R"(Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+))")))
      socket_errors_ = std::stol(m[1]) + std::stol(m[2]) + std::stol(m[3]) + std::stol(m[4]);
    if (std::regex_search(text_, m, std::regex(R"(Non-2xx or 3xx responses: (\d+))"))) non_2xx_ = std::stol(m[1]);
    return done_ && exited_ok_;
  }
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

// (a) TERM to a master whose workers are busy with Connection: close clients
// (whose connections come and go, so the accept queue is never empty) and with
// keep-alive clients: the master exits 0 within its bound, every worker is gone,
// and nothing was touched after being freed (under ASan the harness fails on any
// report in the log). Before the fix: heap-use-after-free in on_url, from
// sessions accepted by ~TcpListener after their handler was gone.
TEST(WorkerLifecycle, TermUnderLoadExitsCleanly) {
  for (int round = 0; round < 3; ++round) {
    Preforkd server({.workers = 2});
    std::string why;
    ASSERT_TRUE(server.start(10s, &why)) << why;
    auto workers = server.worker_pids();
    Wrk closing(server.http_port(), 200, 5, /*keep_alive=*/false, server.dir());
    Wrk keep_alive(server.http_port(), 32, 5, /*keep_alive=*/true, server.dir());
    std::this_thread::sleep_for(1500ms);
    ASSERT_TRUE(server.signal(SIGTERM));
    EXPECT_EQ(server.wait_exit(10s), std::optional<int>(0)) << server.log();
    for (pid_t w : workers) EXPECT_TRUE(wait_gone(w, 3s)) << "worker " << w;
    closing.finish();
    keep_alive.finish();
    std::cout << "[ figures  ] round " << round << ": TERM after " << closing.requests() << " close + "
              << keep_alive.requests() << " keep-alive requests\n";
    for (const char* marker : {"AddressSanitizer", "runtime error", "uv_loop_close"})
      EXPECT_EQ(server.log().find(marker), std::string::npos) << server.log();
  }
}

}  // namespace
