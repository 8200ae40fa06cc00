// ConnectionSet: a session opened after retirement began (during a retiring
// listener's linger, or the final drain of its queue) is retiring from its first
// byte. On a real loop with a real loopback TCP connection.
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <gtest/gtest.h>

#include <memory>

#include "tests/unit/tcp_pair.hpp"
#include "worker/handler.hpp"
#include "worker/stream_connection.hpp"
#include "worker/worker_stats.hpp"

namespace preforkd {
namespace {

struct RecordingSession final : StreamSession {
  explicit RecordingSession(int* retired) : retired_(retired) {}
  void on_data(std::string_view) override {}
  void on_eof() override {}
  void on_retire() override { ++*retired_; }
  int* retired_;
};

struct RecordingHandler final : StreamHandler {
  std::unique_ptr<StreamSession> open_session(StreamTransport&) override {
    return std::make_unique<RecordingSession>(&retired);
  }
  int retired = 0;
};

using preforkd::test::tcp_pair;

class ConnectionSetTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(uv_loop_init(&loop_), 0); }
  void TearDown() override {
    // Close callbacks need the set: run them before it goes.
    set_->close_all();
    uv_run(&loop_, UV_RUN_DEFAULT);
    set_.reset();
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0) << "a handle leaked";
    for (int fd : clients_) ::close(fd);
  }
  void open_connection() {
    auto [server, client] = tcp_pair();
    clients_.push_back(client);
    set_->create().start(server, handler_, 0);
  }
  uv_loop_t loop_{};
  WorkerStats stats_;
  std::unique_ptr<ConnectionSet> set_ = std::make_unique<ConnectionSet>(&loop_, stats_);
  RecordingHandler handler_;
  std::vector<int> clients_;
};

TEST_F(ConnectionSetTest, RetireAllReachesEveryOpenSession) {
  open_connection();
  open_connection();
  EXPECT_EQ(handler_.retired, 0);
  set_->retire_all();
  EXPECT_EQ(handler_.retired, 2);
}

// The finding of issue 10: retire_all() ran once, so a connection accepted in
// the linger after it never heard of the retirement and, under keep-alive, stayed
// until SIGKILL at graceful_timeout.
TEST_F(ConnectionSetTest, SessionOpenedAfterRetirementBeganIsRetiredAtOnce) {
  open_connection();
  set_->retire_all();
  ASSERT_EQ(handler_.retired, 1);
  open_connection();
  EXPECT_EQ(handler_.retired, 2) << "a session accepted during the linger was not told the worker retires";
  open_connection();
  EXPECT_EQ(handler_.retired, 3);
}

}  // namespace
}  // namespace preforkd
