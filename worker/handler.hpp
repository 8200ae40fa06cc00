// The protocol interface. A protocol is one file implementing StreamHandler (for
// TCP) or DatagramHandler (for UDP) plus one line in handler_registry.cpp; the
// worker owns sockets, buffers, back-pressure and shutdown, the handler only
// decides what to send.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace preforkd {

// What a session may do with its connection. StreamConnection implements it on a
// real socket; tests and fuzzers drive sessions through a recording fake.
class StreamTransport {
 public:
  virtual ~StreamTransport() = default;
  // Queues bytes; the strings are kept alive until written. Either may be empty.
  virtual void write(std::string head, std::string body = {}) = 0;
  // Queues head and a body shared with a cache, which must not change it. The
  // default copies; StreamConnection sends the shared bytes without a copy.
  virtual void write_shared(std::string head, std::shared_ptr<const std::string> body) {
    write(std::move(head), body ? *body : std::string());
  }
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
  // (Not pure, so that a recording fake may ignore time.)
  virtual void set_timeout(std::uint64_t ms) { (void)ms; }
  // The peer's address without port ("127.0.0.1", "::1"), for the access log.
  virtual std::string peer_address() const { return "-"; }
};

// One connection's protocol state; created when the connection is accepted and
// destroyed with it.
class StreamSession {
 public:
  virtual ~StreamSession() = default;
  // Bytes from the peer. The view is valid only during the call.
  virtual void on_data(std::string_view bytes) = 0;
  // The peer will send nothing more (FIN).
  virtual void on_eof() = 0;
  // Every queued write has completed: the hook for streaming and back-pressure.
  virtual void on_writes_done() {}
  // The worker is retiring: finish the unit of work in progress, then close.
  virtual void on_retire() = 0;
  // The deadline armed with StreamTransport::set_timeout() has passed.
  virtual void on_timeout() {}
};

class StreamHandler {
 public:
  virtual ~StreamHandler() = default;
  virtual std::unique_ptr<StreamSession> open_session(StreamTransport& transport) = 0;
};

// Where a datagram handler sends its answers.
class DatagramReplier {
 public:
  virtual ~DatagramReplier() = default;
  virtual void send_to(std::string_view bytes, const sockaddr* peer) = 0;
};

class DatagramHandler {
 public:
  virtual ~DatagramHandler() = default;
  virtual void on_datagram(std::string_view bytes, const sockaddr* peer, DatagramReplier& replier) = 0;
};

}  // namespace preforkd
