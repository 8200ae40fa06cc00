// One accepted TCP connection. It owns its socket, a uv_poll_t on it and its
// protocol session, and is destroyed in the poll handle's close callback, the only
// moment libuv guarantees no further callback for it. ConnectionSet owns all of a
// worker's connections.
//
// The socket is read and written here rather than through uv_tcp_t, for three
// things libuv's streams cannot do: write at once and queue only what the socket
// did not take (uv_write queues every write and completes it on a later loop turn,
// with an epoll_ctl per response: the keep-alive profile's largest user-space
// cost); sendfile(2) with a wait for POLLOUT on EAGAIN; and MSG_MORE on a response
// head followed by a file, so head and file start in one segment.
#pragma once

#include <sys/uio.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "common/log.hpp"
#include "common/uv_handle.hpp"
#include "worker/handler.hpp"
#include "worker/worker_stats.hpp"

namespace preforkd {

class ConnectionSet;

class StreamConnection final : public StreamTransport {
 public:
  StreamConnection(ConnectionSet& owner);
  StreamConnection(const StreamConnection&) = delete;
  StreamConnection& operator=(const StreamConnection&) = delete;
  ~StreamConnection() override;

  // Takes a connected non-blocking fd (accept4'd by the listener) and starts
  // reading. Output that makes no progress for send_timeout_ms closes the
  // connection. On failure the connection closes itself.
  void start(int fd, StreamHandler& handler, std::uint64_t send_timeout_ms);

  void write(std::string head, std::string body = {}) override;
  void write_shared(std::string head, std::shared_ptr<const std::string> body) override;
  void write_shared_range(std::string head, std::shared_ptr<const std::string> body, std::size_t offset,
                          std::size_t length) override;
  void write_now(std::string_view head, std::string_view body, std::shared_ptr<const void> body_owner) override;
  void write_file(std::string_view head, int fd, std::uint64_t offset, std::uint64_t length,
                  std::shared_ptr<const void> owner) override;
  std::size_t write_queue_size() const override { return queued_bytes_; }
  bool writes_pending() const override { return !queue_.empty(); }
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
  // Output the socket has not taken yet: bytes (our own copy, or a view kept valid
  // by `owner`), or a file range sent with sendfile.
  struct Pending {
    std::string owned;
    std::string_view shared;  // when owner holds the bytes
    std::shared_ptr<const void> owner;
    std::size_t done = 0;  // bytes of owned/shared already sent
    int file_fd = -1;
    std::uint64_t file_offset = 0;
    std::uint64_t file_left = 0;
    bool is_file() const { return file_fd >= 0; }
    std::string_view rest() const {
      return (owner && !is_file() ? shared : std::string_view(owned)).substr(done);
    }
  };
  // After close or a shutdown nothing more is sent (a session's bug; logged).
  bool accepts_output() const {
    if (closing_) return false;
    if (shutting_down_ || lingering_) {
      PF_LOG_DEBUG("write after shutdown dropped");
      return false;
    }
    return true;
  }
  // Sends what it can of the pieces at once (nothing is queued ahead of them);
  // returns how many bytes the socket took, or -1 after a fatal error (closed).
  ssize_t send_now(const iovec* iov, int count, bool more);
  // send_now of head and body when nothing is queued ahead of them; 0 when
  // something is (they must wait their turn), -1 after a fatal error.
  ssize_t send_unless_queued(std::string_view head, std::string_view body);
  // The write path's common end: `pieces` bytes went out of `total`; queues the
  // rest of a and b (views into memory that a_owner/b_owner keep alive, or copies).
  void queue_rest(std::string_view a, std::string&& a_owned, std::string_view b, std::string&& b_owned,
                  std::shared_ptr<const void>&& b_owner, std::size_t sent);
  void queue_file(int fd, std::uint64_t offset, std::uint64_t length, std::shared_ptr<const void>&& owner);
  // Writes queued output until the socket is full or the queue empty.
  void flush();
  // sendfile for the queue's first entry; false when the socket is full or closed.
  bool send_file_part(Pending& p);
  void on_queue_drained();
  void on_queued();
  void read_once();
  // The poll mask follows reading_ and the queue. Inside our own poll callback the
  // change is applied once at its end, so pausing and resuming within one request
  // costs no epoll_ctl (each uv_poll_start is an EPOLL_CTL_DEL and an ADD).
  void update_poll();
  void apply_poll();
  static void on_poll(uv_poll_t* handle, int status, int events);
  static void on_closed(uv_handle_t* h);
  static void on_deadline(uv_timer_t* timer);
  static void on_send_check(uv_timer_t* timer);
  bool init_timer(UvHandle<uv_timer_t>& timer);
  void watch_send_progress();
  void send_fin();

  ConnectionSet& owner_;
  uv_poll_t poll_{};
  int fd_ = -1;
  int poll_mask_ = 0;  // what uv_poll_start was last given
  std::unique_ptr<StreamSession> session_;
  std::list<std::unique_ptr<StreamConnection>>::iterator self_;
  std::vector<Pending> queue_;
  std::size_t queue_head_ = 0;  // queue_[queue_head_] is the next to send
  std::size_t queued_bytes_ = 0;
  bool initialized_ = false;
  bool reading_ = false;
  bool closing_ = false;
  bool shutting_down_ = false;  // shutdown_and_close(): close once the queue is empty
  bool lingering_ = false;      // shutdown_and_linger(): input is read and dropped
  bool fin_sent_ = false;
  bool in_poll_callback_ = false;
  bool poll_dirty_ = false;
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
  std::uint64_t bytes_sent_ = 0;
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
