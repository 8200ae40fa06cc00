// tcp-echo. Back-pressure: a peer that sends faster than it reads would grow our
// write queue without bound, so reading pauses while too much is queued (and the
// connection's send timeout closes it if the peer never reads).
// On retire the session stays until the peer closes (or the master's graceful
// timeout ends the worker): an echo session has no request boundary at which
// closing would be safe for the client.
#include "worker/echo_handler.hpp"


namespace preforkd {
namespace {

constexpr std::size_t kMaxQueuedBytes = 1 << 20;

class EchoSession final : public StreamSession {
 public:
  EchoSession(StreamTransport& connection, std::uint64_t idle_timeout_ms)
      : connection_(connection), idle_timeout_ms_(idle_timeout_ms) {
    connection_.set_timeout(idle_timeout_ms_);
  }

  void on_data(std::string_view bytes) override {
    connection_.set_timeout(idle_timeout_ms_);
    connection_.write(std::string(bytes));
    if (connection_.write_queue_size() > kMaxQueuedBytes) connection_.pause_reading();
  }
  // Output still queued is the send timeout's business, not idleness.
  void on_timeout() override {
    if (connection_.writes_pending()) {
      connection_.set_timeout(idle_timeout_ms_);
      return;
    }
    connection_.close();
  }
  void on_eof() override {
    peer_done_ = true;
    connection_.shutdown_and_close();
  }
  void on_writes_done() override {
    if (!peer_done_) connection_.resume_reading();
  }
  void on_retire() override {}

 private:
  StreamTransport& connection_;
  std::uint64_t idle_timeout_ms_;
  bool peer_done_ = false;
};

class EchoHandler final : public StreamHandler {
 public:
  explicit EchoHandler(std::uint64_t idle_timeout_ms) : idle_timeout_ms_(idle_timeout_ms) {}
  std::unique_ptr<StreamSession> open_session(StreamTransport& connection) override {
    return std::make_unique<EchoSession>(connection, idle_timeout_ms_);
  }

 private:
  std::uint64_t idle_timeout_ms_;
};

}  // namespace

std::unique_ptr<StreamHandler> make_tcp_echo_handler(std::uint64_t idle_timeout_ms) {
  return std::make_unique<EchoHandler>(idle_timeout_ms);
}

}  // namespace preforkd
