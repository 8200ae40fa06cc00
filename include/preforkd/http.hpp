// The HTTP/1.1 layer: request parsing, framing, keep-alive, ordered pipelining,
// limits (max_request_line, max_header_size, max_body_size), timeouts
// (header_timeout, idle_timeout, send_timeout, retire_idle_grace), request
// smuggling defences, retirement with Connection: close and a lingering close, and
// the access log. An application writes an http::Handler and serves it with
// http::serve(); the built-in static-file server (`protocol = "http"`) is one such
// handler.
//
//   class Hello final : public preforkd::http::Handler {
//     void on_request(preforkd::http::Exchange& ex) override {
//       ex.respond(200, "Content-Type: text/plain\r\n", preforkd::http::Body::bytes("hello\n"));
//     }
//   };
//   // in Protocol::declare:         preforkd::http::declare_keys(schema);
//   // in Protocol::stream_handler:  return preforkd::http::serve(listener, std::make_unique<Hello>());
//
// The layer writes the status line, Server, Date, Connection (when not the
// version's default) and Content-Length (from the Body; none for 1xx, 204 and 304),
// and for HEAD sends no body. Handlers add every other header and must not write
// those four or Transfer-Encoding.
//
// Requests on one connection are answered strictly in order: the next one is not
// parsed until the current response has been queued (a file body: fully sent), so a
// handler sees one request per connection at a time.
//
// ABI: applications derive from Handler (fixed for libpreforkd.so.0); Request and
// Exchange are implemented by the library (functions may be added at the end); Body,
// Headers, Response and Deferred are value types of fixed layout.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <preforkd/export.hpp>
#include <preforkd/protocol.hpp>
#include <preforkd/stream.hpp>

namespace preforkd::http {

// Declares the layer's [[listen]] keys (the limits and timeouts above, with the
// built-in http's defaults and ranges). Call it from Protocol::declare of every
// protocol that uses serve().
PREFORKD_API void declare_keys(Schema& schema);

// The reason phrase preforkd sends for a status ("Not Found"), or "Unknown".
PREFORKD_API std::string_view reason_phrase(int status);

struct Header {
  std::string_view name;
  std::string_view value;
};

// One parsed request. Valid until its response has been queued (for a Deferred
// answer: until Deferred::respond or until the connection is gone).
class PREFORKD_API Request {
 public:
  virtual std::string_view method() const = 0;  // "GET", "POST", ...
  virtual std::string_view target() const = 0;  // as sent: "/a/b?x=1"
  virtual std::string_view path() const = 0;    // the target up to '?' or '#'
  virtual std::string_view query() const = 0;   // after '?', without it; "" if none
  virtual int version_major() const = 0;
  virtual int version_minor() const = 0;
  // The first header of that name (case-insensitive), "" if absent.
  virtual std::string_view header(std::string_view name) const = 0;
  virtual std::size_t header_count() const = 0;
  virtual Header header_at(std::size_t index) const = 0;
  // The request body, when Handler::wants_body() asked for it; else "".
  virtual std::string_view body() const = 0;
  virtual std::string peer_address() const = 0;  // "127.0.0.1", "-" if unknown

 protected:
  ~Request() = default;
};

// A response body: bytes owned by the response, bytes shared with a cache (never
// copied), a file range (streamed with back-pressure; the layer owns the fd from
// here on and closes it), or, for HEAD, only the length a GET would send.
class PREFORKD_API Body {
 public:
  enum class Kind { bytes, shared, file, length_only };

  Body() = default;  // empty
  static Body bytes(std::string bytes);
  static Body shared(std::shared_ptr<const std::string> bytes);
  static Body shared(std::shared_ptr<const std::string> bytes, std::size_t offset, std::size_t length);
  static Body file(int fd, std::uint64_t offset, std::uint64_t length);
  static Body length_only(std::uint64_t length);

  Body(Body&& other) noexcept;
  Body& operator=(Body&& other) noexcept;
  Body(const Body&) = delete;
  Body& operator=(const Body&) = delete;
  ~Body();  // closes a file body's fd if it was never handed to the layer

  Kind kind() const { return kind_; }
  std::uint64_t length() const { return length_; }
  const std::string& owned_bytes() const { return bytes_; }
  const std::shared_ptr<const std::string>& shared_bytes() const { return shared_; }
  std::uint64_t offset() const { return offset_; }
  int fd() const { return fd_; }
  // Gives up the file descriptor (the caller closes it now).
  int release_fd() noexcept;
  std::string take_bytes() { return std::move(bytes_); }

 private:
  Kind kind_ = Kind::bytes;
  std::string bytes_;
  std::shared_ptr<const std::string> shared_;
  int fd_ = -1;
  std::uint64_t offset_ = 0;
  std::uint64_t length_ = 0;
};

// Header lines for a response, each "Name: value\r\n".
class PREFORKD_API Headers {
 public:
  // Throws std::invalid_argument for a name that is not an HTTP token or a value
  // with CR, LF or NUL (a response split is never the handler's accident).
  Headers& add(std::string_view name, std::string_view value);
  const std::string& text() const { return text_; }
  operator std::string_view() const { return text_; }

 private:
  std::string text_;
};

struct Response {
  int status = 200;
  Headers headers;
  Body body;
};

namespace detail {
struct DeferredState;
}

// An answer that comes later, from another callback on the loop thread (a timer, an
// outbound connection, a uv_queue_work after-callback). Copyable; the first
// respond() wins.
class PREFORKD_API Deferred {
 public:
  Deferred() = default;
  explicit Deferred(std::shared_ptr<detail::DeferredState> state) : state_(std::move(state)) {}
  // The connection is still open and waits for this answer.
  bool pending() const;
  // The request, while pending(); nullptr after.
  const Request* request() const;
  // False when nothing was sent: the connection is gone or it was answered already.
  bool respond(int status, std::string_view headers, Body body);
  bool respond(Response response) { return respond(response.status, response.headers, std::move(response.body)); }
  bool respond_error(int status);

 private:
  std::shared_ptr<detail::DeferredState> state_;
};

// One request and its response, during Handler::on_request.
class PREFORKD_API Exchange {
 public:
  virtual const Request& request() const = 0;
  // Queues the response: status line and the layer's headers, then `headers`
  // (lines as Headers::text() makes them), then the body. Once per request.
  virtual void respond(int status, std::string_view headers, Body body) = 0;
  // Handler::error_response(status), sent.
  virtual void respond_error(int status) = 0;
  // Answer later instead: returns the handle to answer with; on_request returns
  // without responding. The connection waits (no timeout applies meanwhile).
  virtual Deferred defer() = 0;
  void respond(Response response) { respond(response.status, response.headers, std::move(response.body)); }

 protected:
  ~Exchange() = default;
};

// An application of the layer; one per listener in each worker (see serve()).
class PREFORKD_API Handler {
 public:
  virtual ~Handler();
  // A request's headers are complete (the body is not there yet): true to have the
  // body collected for Request::body() (at most max_body_size; more is a 413).
  // The default, false, reads and discards it.
  virtual bool wants_body(const Request& request);
  // The request is complete. Answer with exchange.respond() now, or defer().
  virtual void on_request(Exchange& exchange) = 0;
  // The response for an error status: the layer's own (400, 408, 413, 414, 431,
  // 500) and Exchange::respond_error(). The default: a small HTML page.
  virtual Response error_response(int status);
};

// The StreamHandler that serves `handler` on `listener`, whose protocol called
// declare_keys(). Call it from Protocol::stream_handler.
PREFORKD_API std::unique_ptr<StreamHandler> serve(Listener& listener, std::unique_ptr<Handler> handler);

}  // namespace preforkd::http
