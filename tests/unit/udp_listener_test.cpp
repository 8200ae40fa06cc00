// UdpListener on a real libuv loop and loopback sockets, in one thread: datagrams
// are queued on the socket before the loop runs, so libuv reads them in recvmmsg
// batches and the listener answers each batch with one sendmmsg. Checked: every
// reply arrives in order, replies that must be sent at once (not from the receive
// buffer) do not overtake batched ones, a stop from inside a handler still sends
// the batch so far, and the request counter counts what was sent.
#include "worker/udp_listener.hpp"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "common/address.hpp"
#include "tests/unit/loopback_sockets.hpp"

namespace preforkd {
namespace {

using Reply = std::function<void(std::string_view, const sockaddr*, DatagramReplier&)>;

class ScriptedHandler final : public DatagramHandler {
 public:
  explicit ScriptedHandler(Reply reply) : reply_(std::move(reply)) {}
  void on_datagram(std::string_view bytes, const sockaddr* peer, DatagramReplier& replier) override {
    reply_(bytes, peer, replier);
  }

 private:
  Reply reply_;
};

// A non-blocking UDP socket bound to 127.0.0.1 on a free port.
int bound_udp_socket(SocketAddress* address) {
  *address = test::loopback_any_port();
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  EXPECT_EQ(::bind(fd, address->sa(), address->length), 0) << std::strerror(errno);
  return fd;
}

class UdpListenerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    SocketAddress server, client;
    server_fd_ = bound_udp_socket(&server);
    client_ = bound_udp_socket(&client);
    ASSERT_EQ(::connect(client_, server.sa(), server.length), 0);
    config_.name = "udp-test";
    config_.address = server;
    config_.protocol = {"udp-echo", Transport::datagram};
  }

  void TearDown() override {
    listener_.reset();  // closes the handle (and the adopted server fd)
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0) << "a handle was left open";
    ::close(client_);
  }

  void start(Reply reply) {
    listener_ = std::make_unique<UdpListener>(config_, std::make_unique<ScriptedHandler>(std::move(reply)), stats_);
    ASSERT_EQ(listener_->start(&loop_, server_fd_), 0);
  }

  void send_datagrams(int n) {
    for (int i = 0; i < n; ++i) {
      std::string d = "datagram " + std::to_string(i);
      ASSERT_EQ(::send(client_, d.data(), d.size(), 0), static_cast<ssize_t>(d.size()));
    }
  }

  // Runs the loop and reads the client socket until `expected` replies came or 5 s
  // passed; then half a second more, to catch replies that should not come.
  std::vector<std::string> run_until(std::size_t expected) {
    std::vector<std::string> got;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    auto settle = deadline;
    bool settling = false;
    while (std::chrono::steady_clock::now() < (settling ? settle : deadline)) {
      uv_run(&loop_, UV_RUN_NOWAIT);
      pollfd p{client_, POLLIN, 0};
      if (::poll(&p, 1, 10) == 1) {
        char buf[2048];
        ssize_t n = ::recv(client_, buf, sizeof buf, 0);
        if (n >= 0) got.emplace_back(buf, static_cast<std::size_t>(n));
      }
      if (!settling && got.size() >= expected) {
        settling = true;
        settle = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
      }
    }
    return got;
  }

  uv_loop_t loop_{};
  int server_fd_ = -1, client_ = -1;
  ListenerConfig config_;
  WorkerStats stats_;
  std::unique_ptr<UdpListener> listener_;
};

std::vector<std::string> numbered(int n, const std::string& prefix = "") {
  std::vector<std::string> v;
  for (int i = 0; i < n; ++i) v.push_back(prefix + "datagram " + std::to_string(i));
  return v;
}

TEST_F(UdpListenerTest, EchoesBatchesInOrderAndCountsEveryReply) {
  start([](std::string_view bytes, const sockaddr* peer, DatagramReplier& r) { r.send_to(bytes, peer); });
  send_datagrams(50);  // queued before the loop runs: read as batches of up to 20
  auto got = run_until(50);
  EXPECT_EQ(got, numbered(50));
  EXPECT_EQ(stats_.requests, 50u);
}

// The second reply is a temporary: it must go out at once, so the batched echo in
// front of it has to be sent first.
TEST_F(UdpListenerTest, AReplyNotFromTheReceiveBufferDoesNotOvertakeBatchedOnes) {
  start([](std::string_view bytes, const sockaddr* peer, DatagramReplier& r) {
    r.send_to(bytes, peer);
    std::string ack = "ack " + std::string(bytes);
    r.send_to(ack, peer);
  });
  send_datagrams(30);
  auto got = run_until(60);
  std::vector<std::string> expected;
  for (const auto& d : numbered(30)) {
    expected.push_back(d);
    expected.push_back("ack " + d);
  }
  EXPECT_EQ(got, expected);
  EXPECT_EQ(stats_.requests, 60u);
}

// A stop in the middle of a batch ends it without libuv's last callback: the
// replies batched so far must still go out, and nothing after them.
TEST_F(UdpListenerTest, StopInsideABatchStillSendsItsReplies) {
  int seen = 0;
  start([this, &seen](std::string_view bytes, const sockaddr* peer, DatagramReplier& r) {
    r.send_to(bytes, peer);
    if (++seen == 5) listener_->stop();
  });
  send_datagrams(12);
  auto got = run_until(5);
  EXPECT_EQ(got, numbered(5));
  EXPECT_EQ(stats_.requests, 5u);
}

TEST_F(UdpListenerTest, DatagramsOverTheLimitAreDroppedAndTheRestEchoed) {
  config_.max_datagram_size = 12;  // "datagram 9" is 10 bytes, "datagram 10" 11, "datagram 100" 12
  start([](std::string_view bytes, const sockaddr* peer, DatagramReplier& r) { r.send_to(bytes, peer); });
  for (std::string d : {"datagram 1", "datagram 1234", "datagram 100", "datagram 12345", "x"})
    ASSERT_EQ(::send(client_, d.data(), d.size(), 0), static_cast<ssize_t>(d.size()));
  auto got = run_until(3);
  EXPECT_EQ(got, (std::vector<std::string>{"datagram 1", "datagram 100", "x"}));
  EXPECT_EQ(stats_.requests, 3u);
}

}  // namespace
}  // namespace preforkd
