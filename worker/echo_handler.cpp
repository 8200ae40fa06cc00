// tcp-echo. Back-pressure: a peer that sends faster than it reads would grow our
// write queue without bound, so reading pauses while too much is queued.
// On retire the session stays until the peer closes (or the master's graceful
// timeout ends the worker): an echo session has no request boundary at which
// closing would be safe for the client.
#include "worker/echo_handler.hpp"


namespace preforkd {
namespace {

constexpr std::size_t kMaxQueuedBytes = 1 << 20;

class EchoSession final : public StreamSession {
 public:
  explicit EchoSession(StreamTransport& connection) : connection_(connection) {}

  void on_data(std::string_view bytes) override {
    connection_.write(std::string(bytes));
    if (connection_.write_queue_size() > kMaxQueuedBytes) connection_.pause_reading();
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
  bool peer_done_ = false;
};

class EchoHandler final : public StreamHandler {
 public:
  std::unique_ptr<StreamSession> open_session(StreamTransport& connection) override {
    return std::make_unique<EchoSession>(connection);
  }
};

}  // namespace

std::unique_ptr<StreamHandler> make_tcp_echo_handler() { return std::make_unique<EchoHandler>(); }

}  // namespace preforkd
