// Sessions over a connection, and datagram handlers: what a protocol implements.
// The worker owns sockets, buffers, back-pressure, timeouts and shutdown; a session
// only decides what to send. Every callback runs on the worker's loop thread.
//
// Lifetime: a StreamSession is created by StreamHandler::open_session when a
// connection is accepted and is owned by that connection; it is destroyed after the
// connection has closed (after close(), or after a shutdown's last write), never
// during one of its own callbacks. Its StreamTransport& is valid for its whole life.
// A StreamHandler outlives every session it made.
//
// ABI: applications derive from StreamSession, StreamHandler and DatagramHandler,
// so their virtual functions are fixed for the life of libpreforkd.so.0. They call
// StreamTransport and DatagramReplier, which only the library implements: new
// functions may be added to those at the end.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <preforkd/export.hpp>

namespace preforkd {

// What a session may do with its connection. Implemented by the library (and by
// the recording fakes of the tests); applications only call it.
class PREFORKD_API StreamTransport {
 public:
  virtual ~StreamTransport() = default;
  // Queues bytes; the strings are kept alive until written. Either may be empty.
  virtual void write(std::string head, std::string body = {}) = 0;
  // Queues head and a body shared with a cache, which must not change it. The
  // default copies; the real connection sends the shared bytes without a copy.
  virtual void write_shared(std::string head, std::shared_ptr<const std::string> body) {
    write(std::move(head), body ? *body : std::string());
  }
  // Bytes queued and not yet taken by the kernel.
  virtual std::size_t write_queue_size() const = 0;
  virtual bool writes_pending() const = 0;
  virtual void pause_reading() = 0;
  virtual void resume_reading() = 0;
  // Sends FIN once queued writes are flushed, then closes.
  virtual void shutdown_and_close() = 0;
  // For a close the peer did not ask for, while it may still be sending (a keep-
  // alive client of a retiring worker): FIN once queued writes are flushed, then
  // read and discard until the peer's FIN or a bound, then close. Closing with its
  // bytes unread would send a reset, which can destroy our last response before
  // the peer has read it (nginx's lingering close; RFC 9112 section 9.6).
  virtual void shutdown_and_linger() { shutdown_and_close(); }
  // Closes now; unsent data is dropped.
  virtual void close() = 0;
  // The session's one deadline: its on_timeout() runs `ms` from now unless the
  // deadline is moved again first; 0 cancels. Cheap enough to call on every read.
  virtual void set_timeout(std::uint64_t ms) { (void)ms; }
  // The peer's address without port ("127.0.0.1", "::1"), or "-".
  virtual std::string peer_address() const { return "-"; }
  // Queues head and bytes [offset, offset + length) of a shared body. The default
  // copies the range; the real connection sends it without a copy.
  virtual void write_shared_range(std::string head, std::shared_ptr<const std::string> body, std::size_t offset,
                                  std::size_t length) {
    write(std::move(head), body ? body->substr(offset, length) : std::string());
  }
};

// One connection's protocol state.
class PREFORKD_API StreamSession {
 public:
  virtual ~StreamSession() = default;
  // Bytes from the peer. The view is valid only during the call.
  virtual void on_data(std::string_view bytes) = 0;
  // The peer will send nothing more (FIN). Reading has stopped.
  virtual void on_eof() = 0;
  // Every queued write has completed: the hook for streaming and back-pressure.
  virtual void on_writes_done() {}
  // The worker is retiring (reload, QUIT, TTOU, max_requests): finish the unit of
  // work in progress, then close. Also called right after open_session for a
  // connection accepted while retiring. See README, "Writing your own protocol".
  virtual void on_retire() = 0;
  // The deadline armed with StreamTransport::set_timeout() has passed.
  virtual void on_timeout() {}
};

// Makes a session per accepted connection; one per listener in each worker.
class PREFORKD_API StreamHandler {
 public:
  virtual ~StreamHandler() = default;
  virtual std::unique_ptr<StreamSession> open_session(StreamTransport& transport) = 0;
};

// Where a datagram handler sends its answers (the listener's own socket).
class PREFORKD_API DatagramReplier {
 public:
  virtual ~DatagramReplier() = default;
  // Sends at once if the socket takes it, else queues a copy (bounded; excess is
  // dropped, as UDP may). Each reply counts as one request of the worker.
  virtual void send_to(std::string_view bytes, const sockaddr* peer) = 0;
};

// One per datagram listener in each worker.
class PREFORKD_API DatagramHandler {
 public:
  virtual ~DatagramHandler() = default;
  // One datagram (never truncated: longer than max_datagram_size is dropped
  // before it gets here). bytes and peer are valid only during the call.
  virtual void on_datagram(std::string_view bytes, const sockaddr* peer, DatagramReplier& replier) = 0;
};

}  // namespace preforkd
