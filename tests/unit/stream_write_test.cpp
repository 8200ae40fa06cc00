// StreamConnection's write path on a real loop and a real loopback TCP connection
// whose server side has a small send buffer: answers from one byte to past the
// size up to which head and body are copied into one buffer, written as head and
// body pieces, meet a full socket again and again; what the socket does not take
// is queued from the original pieces. The client must read exactly the bytes
// written, in order.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "tests/unit/tcp_pair.hpp"
#include "worker/stream_connection.hpp"
#include "worker/worker_stats.hpp"

namespace preforkd {
namespace {

struct Answer {
  std::string head;
  std::shared_ptr<const std::string> body;
};

// Writes the answers in order, each as soon as nothing is queued: every answer
// after the first at a fill point is then the one that meets the full socket.
struct WritingSession final : StreamSession {
  WritingSession(StreamTransport& transport, const std::vector<Answer>& answers)
      : transport_(transport), answers_(answers) {}
  void on_data(std::string_view) override { fill(); }
  void on_eof() override {}
  void on_writes_done() override { fill(); }
  void on_retire() override {}
  void fill() {
    while (next_ < answers_.size() && !transport_.writes_pending()) {
      const Answer& a = answers_[next_++];
      transport_.write_now(a.head, *a.body, a.body);
    }
  }
  StreamTransport& transport_;
  const std::vector<Answer>& answers_;
  std::size_t next_ = 0;
};

struct WritingHandler final : StreamHandler {
  std::unique_ptr<StreamSession> open_session(StreamTransport& transport) override {
    return std::make_unique<WritingSession>(transport, answers);
  }
  std::vector<Answer> answers;
};

TEST(StreamWrite, AnswersOfEverySizeArriveWholeAndInOrderThroughAFullSocket) {
  WritingHandler handler;
  std::string expected;
  for (int i = 0; i < 1500; ++i) {
    // Heads of 1-300 bytes, bodies of 0-4,000: together below and above the
    // one-buffer bound (2 KiB), and bodies that are empty.
    std::string head(static_cast<std::size_t>(1 + (i * 37) % 300), static_cast<char>('A' + i % 26));
    std::string body(static_cast<std::size_t>((i * 131) % 4001), static_cast<char>('a' + i % 26));
    if (!body.empty()) body[0] = static_cast<char>('0' + i % 10);  // a shifted piece changes the bytes
    expected += head + body;
    handler.answers.push_back({head, std::make_shared<const std::string>(body)});
  }

  // Small buffers on both sides, so the answers far outgrow what the kernel holds.
  const int small = 4096;
  auto [server, client] = preforkd::test::tcp_pair(small);
  ASSERT_GE(server, 0);
  ASSERT_EQ(::fcntl(client, F_SETFL, O_NONBLOCK), 0);
  ASSERT_EQ(::fcntl(server, F_SETFL, O_NONBLOCK), 0);
  ASSERT_EQ(::setsockopt(server, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);

  uv_loop_t loop{};
  ASSERT_EQ(uv_loop_init(&loop), 0);
  WorkerStats stats;
  auto set = std::make_unique<ConnectionSet>(&loop, stats);
  set->create().start(server, handler, 0);
  ASSERT_EQ(::send(client, "go", 2, 0), 2);

  // The client reads a little at a time, so the server's socket fills and drains
  // many times over; bounded in time.
  std::string got;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (got.size() < expected.size() && std::chrono::steady_clock::now() < deadline) {
    uv_run(&loop, UV_RUN_NOWAIT);
    char buf[1500];
    ssize_t n = ::recv(client, buf, sizeof buf, 0);
    if (n > 0) {
      got.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0) {
      break;
    } else {
      pollfd p{client, POLLIN, 0};
      ::poll(&p, 1, 1);
    }
  }
  EXPECT_EQ(got.size(), expected.size());
  EXPECT_TRUE(got == expected) << "first difference at byte "
                               << std::mismatch(got.begin(), got.end(), expected.begin(), expected.end()).first -
                                      got.begin();

  set->close_all();
  uv_run(&loop, UV_RUN_DEFAULT);
  set.reset();
  uv_run(&loop, UV_RUN_DEFAULT);
  EXPECT_EQ(uv_loop_close(&loop), 0) << "a handle leaked";
  ::close(client);
}

}  // namespace
}  // namespace preforkd
