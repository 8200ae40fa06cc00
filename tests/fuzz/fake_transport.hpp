// A StreamTransport that records what a session does instead of touching a socket,
// with the same rules StreamConnection enforces (reading paused/resumed, writes
// pending until the driver completes them, shutdown then close). It fails loudly
// (FuzzFailure) on what a real connection would turn into lost or corrupt output:
// a write after close or after shutdown.
//
// Kept in its own header because the StreamTransport interface is expected to grow
// (limits, timeouts); only this file should need to follow it.
#pragma once

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "worker/handler.hpp"

namespace preforkd::fuzz {

// A property the code under test broke. Under libFuzzer an uncaught exception
// aborts, which libFuzzer reports as a crash with the input saved; the replay test
// catches it and names the corpus file.
struct FuzzFailure : std::logic_error {
  using std::logic_error::logic_error;
};

class FakeTransport final : public StreamTransport {
 public:
  struct Write {
    std::string head, body;
  };

  void write(std::string head, std::string body = {}) override {
    if (closed_) throw FuzzFailure("write after close()");
    if (shutting_down_) throw FuzzFailure("write after shutdown_and_close()");
    // Taken at once, as a socket with room takes it: nothing is pending and no
    // on_writes_done will follow.
    if (!writes_complete_at_once_) {
      queued_bytes_ += head.size() + body.size();
      if (!head.empty() || !body.empty()) ++pending_writes_;
    }
    writes_.push_back({std::move(head), std::move(body)});
  }
  void write_now(std::string_view head, std::string_view body, std::shared_ptr<const void>) override {
    write(std::string(head), std::string(body));
  }
  // The default reads the range and hands it to write(); a file that ends early
  // closes the connection there, as StreamConnection's sendfile does.
  // Real connections take writes at once when the socket has room; with this set
  // the fake does too (writes_pending() stays false), else every write waits for
  // complete_writes().
  void set_writes_complete_at_once(bool yes) { writes_complete_at_once_ = yes; }
  std::size_t write_queue_size() const override { return queued_bytes_; }
  bool writes_pending() const override { return pending_writes_ > 0; }
  void pause_reading() override { reading_ = false; }
  void resume_reading() override {
    if (!closed_ && !shutting_down_) reading_ = true;
  }
  void shutdown_and_close() override {
    if (closed_ || shutting_down_) return;
    reading_ = false;
    shutting_down_ = true;
  }
  void close() override {
    closed_ = true;
    reading_ = false;
  }
  void set_timeout(std::uint64_t ms) override { timeout_ms_ = ms; }

  // The driver's side: the peer has accepted every queued byte. Returns whether
  // anything was pending, i.e. whether StreamConnection would call on_writes_done.
  bool complete_writes() {
    bool had = pending_writes_ > 0;
    pending_writes_ = 0;
    queued_bytes_ = 0;
    return had;
  }
  // Hands over the writes recorded so far (for checking) and forgets them.
  std::vector<Write> take_writes() { return std::exchange(writes_, {}); }

  bool reading() const { return reading_; }
  // The timeout the session asked for last (0: none), which StreamConnection
  // would fire as on_timeout.
  std::uint64_t timeout_ms() const { return timeout_ms_; }
  bool closed() const { return closed_; }
  bool shutting_down() const { return shutting_down_; }
  // No more session callbacks for data or EOF (shutdown still reports writes done).
  bool finished() const { return closed_ || shutting_down_; }

 private:
  std::vector<Write> writes_;
  std::size_t queued_bytes_ = 0;
  std::size_t pending_writes_ = 0;
  std::uint64_t timeout_ms_ = 0;
  bool reading_ = false;
  bool writes_complete_at_once_ = false;
  bool shutting_down_ = false;
  bool closed_ = false;
};

}  // namespace preforkd::fuzz
