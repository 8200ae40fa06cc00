// bench/tools/http_floor is the benchmark's reference: when it dies mid-run, bench/run
// stops with "a worker exited on its own" and no figure of that run is usable. These
// tests start the real floor and do what wrk does at the end of every run: hang up
// in the middle of a large answer.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <thread>

#include "tests/integration/harness.hpp"

using namespace itest;
using namespace std::chrono_literals;

namespace {

class Floor {
 public:
  Floor(int port, const std::string& spec) {
    pid_ = fork();
    if (pid_ == 0) {
      // As bench/run starts it (Python's subprocess restores the default), not with
      // the SIGPIPE this test process ignores: an ignored signal stays ignored in exec.
      signal(SIGPIPE, SIG_DFL);
      execl(HTTP_FLOOR_BINARY, "http_floor", "127.0.0.1", std::to_string(port).c_str(), "1", spec.c_str(),
            static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  ~Floor() {
    if (pid_ <= 0 || reaped_) return;  // a reaped pid may already be another process's
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
  }
  Floor(const Floor&) = delete;
  Floor& operator=(const Floor&) = delete;
  // True while the master runs: it exits as soon as one of its workers does.
  bool running() {
    if (pid_ <= 0 || reaped_) return false;
    reaped_ = waitpid(pid_, nullptr, WNOHANG) == pid_;
    return !reaped_;
  }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
};

std::optional<HttpResponse> get_with_retry(int port, const std::string& path) {
  for (int i = 0; i < 50; ++i) {
    if (auto r = http_get(port, path)) return r;
    std::this_thread::sleep_for(100ms);
  }
  return std::nullopt;
}

}  // namespace

// sendfile(2) to a peer that has gone raises SIGPIPE (it has no MSG_NOSIGNAL); the
// floor must take it as EPIPE and drop that connection, not die. It died so in a
// bench/run (keepalive-huge, 2026-12-02): "http_floor: a worker exited on its own".
TEST(BenchFloor, APeerHangingUpMidFileDoesNotKillTheFloor) {
  std::string file = "/tmp/preforkd-floor-test-" + std::to_string(getpid()) + ".bin";
  write_file(file, std::string(8 << 20, 'x'));  // far more than the socket buffers hold
  int port = free_port();
  Floor floor(port, "/big.bin=" + file);
  bool started = get_with_retry(port, "/nothing-here").has_value();
  unlink(file.c_str());  // the floor holds it open from its start
  ASSERT_TRUE(started) << "the floor did not start";

  // Linux reports a reset that comes in CLOSE_WAIT (after the peer's FIN) as EPIPE,
  // and sendfile raises SIGPIPE for it. wrk does this at the end of a run whenever its
  // close() finds the receive buffer empty (a FIN), then the next answer bytes are
  // reset. Here deterministically: the request and a FIN, some of the answer read,
  // then close() with the rest unread (the reset) while the floor waits for room.
  int fd = connect_tcp("127.0.0.1", port);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_EQ(shutdown(fd, SHUT_WR), 0);
  char some[4096];
  ASSERT_GT(recv(fd, some, sizeof some, 0), 0) << "the answer did not begin";
  close(fd);
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(floor.running()) << "the floor died when a peer hung up mid-answer";
  auto after = http_get(port, "/nothing-here");
  ASSERT_TRUE(after.has_value()) << "the floor no longer answers";
  EXPECT_EQ(after->status, 404);
}
