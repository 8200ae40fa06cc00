// One accepted TCP connection. It owns its uv_tcp_t and its protocol session and is
// destroyed in the handle's close callback, the only moment libuv guarantees no
// further callback for it. ConnectionSet owns all of a worker's connections.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>

#include "common/uv_handle.hpp"
#include "worker/handler.hpp"
#include "worker/worker_stats.hpp"

namespace preforkd {

class ConnectionSet;
struct WriteRequest;

class StreamConnection final : public StreamTransport {
 public:
  StreamConnection(ConnectionSet& owner);
  StreamConnection(const StreamConnection&) = delete;
  StreamConnection& operator=(const StreamConnection&) = delete;
  ~StreamConnection() override;

  // Takes a connected fd (accept4'd by the listener) and starts reading. Output
  // that makes no progress for send_timeout_ms closes the connection.
  // On failure the connection closes itself.
  void start(int fd, StreamHandler& handler, std::uint64_t send_timeout_ms);

  void write(std::string head, std::string body = {}) override;
  void write_shared(std::string head, std::shared_ptr<const std::string> body) override;
  void write_shared_range(std::string head, std::shared_ptr<const std::string> body, std::size_t offset,
                          std::size_t length) override;
  std::size_t write_queue_size() const override;
  bool writes_pending() const override { return pending_writes_ > 0; }
  void pause_reading() override;
  void resume_reading() override;
  void shutdown_and_close() override;
  void shutdown_and_linger() override;
  void close() override;
  void set_timeout(std::uint64_t ms) override;
  std::string peer_address() const override;
  bool closing() const { return closing_; }

  void retire();

 private:
  friend class ConnectionSet;
  void queue_write(std::unique_ptr<WriteRequest> request, std::string_view body);
  static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);
  static void on_shutdown(uv_shutdown_t* req, int status);
  static void on_closed(uv_handle_t* h);
  static void on_deadline(uv_timer_t* timer);
  static void on_send_check(uv_timer_t* timer);
  bool init_timer(UvHandle<uv_timer_t>& timer);
  void watch_send_progress();
  std::uint64_t bytes_sent() const { return bytes_queued_ - write_queue_size(); }

  ConnectionSet& owner_;
  uv_tcp_t tcp_{};
  std::unique_ptr<StreamSession> session_;
  std::list<std::unique_ptr<StreamConnection>>::iterator self_;
  std::size_t pending_writes_ = 0;
  bool initialized_ = false;
  bool reading_ = false;
  bool closing_ = false;
  bool shutting_down_ = false;
  bool lingering_ = false;  // shutdown_and_linger(): input is read and dropped
  uv_shutdown_t shutdown_req_{};
  // The session's deadline (loop time, 0 = none). The timer may be due earlier than
  // the deadline (the deadline moved later); it then re-arms itself instead of
  // being restarted on every read.
  UvHandle<uv_timer_t> deadline_timer_;
  std::uint64_t deadline_ = 0;
  std::uint64_t timer_due_ = 0;
  // Send timeout: checked every send_timeout_ms_ while output is queued; a check
  // that sees no byte sent since the previous one closes the connection.
  UvHandle<uv_timer_t> send_timer_;
  std::uint64_t send_timeout_ms_ = 0;
  std::uint64_t bytes_queued_ = 0;
  std::uint64_t sent_at_last_check_ = 0;
  mutable std::string peer_address_;  // looked up on first use
};

// All open connections of one worker, so that retiring can reach each of them and
// the worker can tell when the last one is gone.
class ConnectionSet {
 public:
  ConnectionSet(uv_loop_t* loop, WorkerStats& stats) : loop_(loop), stats_(stats) {}
  ~ConnectionSet();
  StreamConnection& create();
  // Tells every session that the worker retires, and every one created from now on.
  void retire_all();
  void close_all();
  std::size_t size() const { return connections_.size(); }
  // Called each time the set becomes empty.
  void on_empty(std::function<void()> callback) { on_empty_ = std::move(callback); }
  // At `max` connections the set is full(); `on_room` runs each time a close makes
  // it not full again, so that listeners paused at the cap can resume.
  void set_capacity(std::size_t max, std::function<void()> on_room) {
    max_ = max;
    on_room_ = std::move(on_room);
  }
  bool full() const { return connections_.size() >= max_; }
  uv_loop_t* loop() const { return loop_; }
  WorkerStats& stats() { return stats_; }
  // A shared read buffer: each read is consumed within its callback.
  char* read_buffer() { return read_buffer_.get(); }
  static constexpr std::size_t kReadBufferSize = 64 * 1024;

 private:
  friend class StreamConnection;
  void remove(StreamConnection& connection);

  uv_loop_t* loop_;
  WorkerStats& stats_;
  std::list<std::unique_ptr<StreamConnection>> connections_;
  bool retiring_ = false;
  std::function<void()> on_empty_;
  std::size_t max_ = SIZE_MAX;
  std::function<void()> on_room_;
  std::unique_ptr<char[]> read_buffer_ = std::make_unique<char[]>(kReadBufferSize);
};

}  // namespace preforkd
