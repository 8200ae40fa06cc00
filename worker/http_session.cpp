// The HTTP/1.1 session. A request that arrives whole and plain takes the fast path
// (scan_request); every other goes through http_parser, which is paused at the end
// of every request. Either way the handler runs outside parser callbacks and pipelined requests are answered
// strictly in order: the next one is parsed only when the previous response has
// been queued. The session is the Request and the Exchange the handler sees, and
// builds each response head in one buffer it reuses, so a request whose answer the
// socket takes at once costs no allocation.
#include "worker/http_session.hpp"

#include <http_parser.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cerrno>
#include <charconv>
#include <climits>
#include <ctime>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/limits.hpp"
#include "common/log.hpp"
#include "worker/access_log.hpp"
#include "worker/ascii.hpp"
#include "worker/http_date.hpp"
#include "worker/http_quick_answer.hpp"
#include "worker/http_request_scan.hpp"

namespace preforkd {

class HttpSession;

namespace http::detail {

// What a Deferred points to: the session while its request waits for the answer;
// null once answered or once the connection is gone, so a late answer is dropped
// and never lands on the next request.
struct DeferredState {
  HttpSession* session = nullptr;
};

}  // namespace http::detail

namespace {

// Pipelined requests stop being parsed while this much output waits for the peer
// (a queued file range counts its whole unsent length).
constexpr std::size_t kMaxQueuedBytes = 1 << 20;

// "Server: preforkd\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n": the Date changes
// once a second, so the pair is formatted once a second. *second: the one it says.
std::string_view server_and_date(std::time_t* second) {
  static std::time_t cached_at = -1;
  static std::string cached;
  std::time_t now = std::time(nullptr);
  if (now != cached_at) {
    cached = "Server: preforkd\r\nDate: " + format_http_date(now) + "\r\n";
    cached_at = now;
  }
  *second = cached_at;
  return cached;
}

// "HTTP/1.1 200 OK\r\n" for each status (100..999), built on first use: appending
// its pieces per response cost ~130 instructions (callgrind), most of it strlen.
std::string_view status_line(int status) {
  static std::array<std::string, 900> lines;
  std::string& line = lines[static_cast<std::size_t>(status - 100)];
  if (line.empty()) {
    const char digits[3] = {static_cast<char>('0' + status / 100), static_cast<char>('0' + status / 10 % 10),
                            static_cast<char>('0' + status % 10)};
    line.append("HTTP/1.1 ").append(digits, 3).append(" ").append(http::reason_phrase(status)).append("\r\n");
  }
  return line;
}

// Closes a file body's fd once the transport is done with it.
struct OwnedFd {
  int fd;
  explicit OwnedFd(int f) : fd(f) {}
  ~OwnedFd() { ::close(fd); }
};

// (pointer, length): append(first, last) would go through the iterator overload,
// a replace() that costs more than the formatting.
void append_number(std::string& out, std::uint64_t n) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, n);
  out.append(digits, static_cast<std::size_t>(end - digits));
}

// 1xx, 204 and 304 have no body and no Content-Length (RFC 9110 8.6).
bool bodiless(int status) { return (status >= 100 && status < 200) || status == 204 || status == 304; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

class HttpSession final : public StreamSession, private http::Request, private http::Exchange {
 public:
  HttpSession(StreamTransport& transport, http::Handler& handler, QuickAnswers* quick, const HttpLimits& limits,
              Counter requests)
      : transport_(transport),
        handler_(handler),
        quick_(quick),
        limits_(limits),
        header_timeout_ms_(to_timer_ms(limits.header_timeout_s)),
        idle_timeout_ms_(to_timer_ms(limits.idle_timeout_s)),
        retire_grace_ms_(std::min(to_timer_ms(limits.retire_idle_grace_s), idle_timeout_ms_)),
        requests_(requests) {
    http_parser_init(&parser_, HTTP_REQUEST);
    parser_.data = this;
    // The first request has header_timeout to arrive, like every later one.
    transport_.set_timeout(header_timeout_ms_);
  }
  ~HttpSession() override {
    if (deferred_) deferred_->session = nullptr;
  }

  void on_data(std::string_view bytes) override {
    if (closing_) return;
    if (input_.empty()) {
      std::string_view rest = bytes.substr(parse(bytes));
      input_.clear();  // + append, not assign: see build_head
      if (!rest.empty()) input_.append(rest);
    } else {
      input_.append(bytes);
      input_.erase(0, parse(input_));
    }
    after_parse();
  }

  void on_eof() override {
    peer_eof_ = true;
    after_parse();
  }

  void on_writes_done() override {
    if (closing_) return;
    if (waiting_for_writes_) {
      waiting_for_writes_ = false;
      resume();
    }
  }

  // The request in progress (even partly received) is answered, with Connection:
  // close; between requests the client may be sending the next one right now, so
  // the connection waits retire_idle_grace for it (see after_parse).
  void on_retire() override {
    retiring_ = true;
    idle_armed_ = false;  // an idle connection's long wait becomes the grace
    after_parse();
  }

  // A request that is not complete in time gets a 408 (nginx closes silently; a
  // status tells an honest slow client what happened). An idle connection, or one
  // that never sent a byte, is just closed; so is a retiring one silent for the
  // grace.
  void on_timeout() override {
    if (closing_) return;
    if (in_message_) {
      PF_LOG_DEBUG("http: request not complete within %g s; closing", limits_.header_timeout_s);
      send_error(408, /*keep_alive=*/false);
      return;
    }
    closing_ = true;
    transport_.close();
  }

  // Deferred's side.
  bool awaiting() const { return awaiting_response_ && !closing_; }
  const http::Request& as_request() const { return *this; }
  void answer(int status, std::string_view headers, http::Body body) { respond(status, headers, std::move(body)); }
  void answer_error(int status) { respond_error(status); }

 private:
  struct HeaderSpan {
    std::uint32_t name_at = 0, name_length = 0, value_at = 0, value_length = 0;
  };

  static const http_parser_settings kSettings;
  static HttpSession* self(http_parser* p) { return static_cast<HttpSession*>(p->data); }

  bool blocked() const { return closing_ || waiting_for_writes_ || awaiting_response_; }

  // --- http::Request -------------------------------------------------------------
  std::string_view method() const override { return method_name(); }
  std::string_view target() const override { return url(); }
  std::string_view path() const override {
    if (fast_) return url().substr(0, fast_path_length_);  // origin-form, never empty
    std::string_view t = origin_form();
    // A plain loop: find_first_of("?#") costs ~300 instructions per request here
    // (callgrind), a fifth of the static handler's own work.
    std::size_t end = 0;
    while (end < t.size() && t[end] != '?' && t[end] != '#') ++end;
    t = t.substr(0, end);
    return t.empty() ? std::string_view("/") : t;
  }
  std::string_view query() const override {
    std::string_view t = url();
    auto q = t.find('?');
    if (q == std::string_view::npos) return {};
    t.remove_prefix(q + 1);
    return t.substr(0, t.find('#'));
  }
  // The target without an absolute form's "scheme://authority" (RFC 9112 3.2.2):
  // "http://h/a?b" -> "/a?b", "http://h" -> "". Other forms as they are.
  std::string_view origin_form() const {
    std::string_view t = url();
    if (t.empty() || t.front() == '/') return t;
    auto scheme_end = t.find("://");
    if (scheme_end == std::string_view::npos || t.find_first_of("/?#") < scheme_end) return t;
    t.remove_prefix(scheme_end + 3);
    auto path_at = t.find_first_of("/?#");
    return path_at == std::string_view::npos ? std::string_view() : t.substr(path_at);
  }
  int version_major() const override { return http_major(); }
  int version_minor() const override { return http_minor(); }
  std::string_view header(std::string_view name) const override {
    for (const HeaderSpan& h : headers_)
      if (iequals(header_name(h), name)) return header_value(h);
    return {};
  }
  std::size_t header_count() const override { return headers_.size(); }
  http::Header header_at(std::size_t index) const override {
    if (index >= headers_.size()) return {};
    return {header_name(headers_[index]), header_value(headers_[index])};
  }
  std::string_view body() const override { return body_; }
  std::string peer_address() const override { return transport_.peer_address(); }
  // Spans are taken from header_text_ as it grows and both are reset together, so
  // they are in range: no substr bounds check (it cost ~15 instructions a header).
  std::string_view header_name(const HeaderSpan& h) const {
    assert(std::size_t{h.name_at} + h.name_length <= header_text_.size());
    return {header_text_.data() + h.name_at, h.name_length};
  }
  std::string_view header_value(const HeaderSpan& h) const {
    assert(std::size_t{h.value_at} + h.value_length <= header_text_.size());
    return {header_text_.data() + h.value_at, h.value_length};
  }
  std::string_view url() const { return std::string_view(header_text_).substr(url_at_, url_length_); }

  // The request in progress as the fast path or http_parser read it (for a request
  // http_parser refused: whatever it had read).
  unsigned method_code() const { return fast_ ? fast_method_ : parser_.method; }
  const char* method_name() const { return http_method_str(static_cast<http_method>(method_code())); }
  int http_major() const { return fast_ ? 1 : parser_.http_major; }
  int http_minor() const { return fast_ ? fast_minor_ : parser_.http_minor; }

  // --- http::Exchange ------------------------------------------------------------
  const http::Request& request() const override { return *this; }

  void respond(int status, std::string_view headers, http::Body body) override {
    bool keep_alive = false;
    if (!take_answer(&keep_alive)) return;
    send_response(status, headers, std::move(body), keep_alive, /*head=*/head_request_);
    // A deferred answer: go on with what the peer pipelined meanwhile. (From inside
    // on_request the parse loop goes on by itself.)
    if (!dispatching_) resume();
  }

  // The handler's answer has come, by respond() or as a QuickAnswer. false: it is
  // one too many (answered already, or the connection is going). *keep_alive:
  // whether the connection stays, computed now, not when the request came: a
  // deferred answer may find the worker retiring meanwhile.
  bool take_answer(bool* keep_alive) {
    if (!awaiting_response_ || closing_) return false;
    awaiting_response_ = false;
    if (deferred_) {
      deferred_->session = nullptr;
      deferred_.reset();
    }
    *keep_alive = peer_may_send_ && !retiring_;
    return true;
  }

  void respond_error(int status) override {
    http::Response r = error_page(status);
    respond(r.status, r.headers.text(), std::move(r.body));
  }

  http::Deferred defer() override {
    if (!deferred_) {
      deferred_ = std::make_shared<http::detail::DeferredState>();
      deferred_->session = this;
    }
    return http::Deferred(deferred_);
  }

  http::Response error_page(int status) {
    try {
      return handler_.error_response(status);
    } catch (const std::exception& e) {
      PF_LOG_ERROR("http: error_response(%d): %s", status, e.what());
      return handler_.http::Handler::error_response(status);
    }
  }

  // --- parsing -------------------------------------------------------------------

  // Parses as many whole requests as possible and answers each; returns bytes used.
  std::size_t parse(std::string_view data) {
    std::size_t used = 0;
    while (used < data.size() && !blocked()) {
      if (!in_message_) {
        fast_ = false;
        ScannedRequest scanned;  // on the stack: a session member would cost every idle connection ~0.5 KiB
        if (scan_request(data.substr(used), limits_.max_request_line, limits_.max_header_size, scanned)) {
          if (!take_scanned(scanned, data.substr(used, scanned.length))) return data.size();
          used += scanned.length;
          continue;
        }
      }
      std::size_t n = http_parser_execute(&parser_, &kSettings, data.data() + used, data.size() - used);
      used += n;
      auto error = HTTP_PARSER_ERRNO(&parser_);
      if (error == HPE_PAUSED) {
        http_parser_pause(&parser_, 0);
        dispatch();
        continue;
      }
      if (error == HPE_OK && in_message_ && !headers_done_ && parser_.nread > limits_.max_header_size) {
        // parser_.nread counts the request line and headers read so far; the
        // callbacks cannot see it (it is stored at the end of each execute).
        reject_status_ = 431;
        error = HPE_HEADER_OVERFLOW;
      }
      if (error != HPE_OK) {
        // Our own limits fail a callback with reject_status_ set; the parser's
        // header limit (80 KiB, above ours) is the same complaint.
        int status = reject_status_ != 0 ? reject_status_ : error == HPE_HEADER_OVERFLOW ? 431 : 400;
        PF_LOG_DEBUG("http: bad request (%d): %s", status, http_errno_description(error));
        send_error(status, /*keep_alive=*/false);
        return data.size();
      }
    }
    // A request begun and not yet whole: its headers have header_timeout from now,
    // the read that brought its first byte; a later read does not move the
    // deadline (slowloris). A request that arrives whole never needs it, which
    // saves a deadline update per keep-alive request.
    if (in_message_ && !headers_done_ && !header_deadline_armed_ && !closing_) {
      header_deadline_armed_ = true;
      transport_.set_timeout(header_timeout_ms_);
    }
    return used;
  }

  // The fast path's request: what the callbacks would have collected, then the
  // same checks and dispatch. false: refused (and answered), the connection closes.
  bool take_scanned(const ScannedRequest& scanned, std::string_view head) {
    begin_message();
    fast_ = true;
    fast_method_ = scanned.method;
    fast_minor_ = scanned.http_minor;
    fast_keep_alive_ = scanned.keep_alive;
    header_text_.clear();  // + append: see build_head
    header_text_.append(head);
    url_at_ = scanned.target.at;
    url_length_ = scanned.target.length;
    fast_path_length_ = scanned.path_length;
    headers_.reserve(scanned.field_count);  // one allocation, not one per doubling
    for (std::size_t i = 0; i < scanned.field_count; ++i) {
      const ScannedRequest::Field& f = scanned.fields[i];
      headers_.push_back({f.name.at, f.name.length, f.value.at, f.value.length});
      note_header(header_name(headers_.back()), header_value(headers_.back()));
    }
    headers_done_ = true;
    if (int status = check_request(); status != 0) {
      PF_LOG_DEBUG("http: bad request (%d)", status);
      send_error(status, /*keep_alive=*/false);
      return false;
    }
    dispatch();
    return true;
  }

  void resume() {
    if (!input_.empty()) input_.erase(0, parse(input_));
    after_parse();
  }

  // Decides what to do once no more whole requests can be answered right now.
  void after_parse() {
    if (closing_ || blocked()) return;
    bool between_requests = input_.empty() && !in_message_;
    // Idle means between requests of a connection that has had one: a connection
    // that has not yet sent its first request is a client about to send it (it was
    // accepted from the queue moments ago), not an idle keep-alive connection.
    bool idle = between_requests && answered_ > 0;
    if (peer_eof_) {
      // Nothing more will come: flush and say goodbye.
      closing_ = true;
      transport_.shutdown_and_close();
      return;
    }
    // Armed once per idle period: bytes that begin no request (bare CRLFs, which
    // the parser skips) must not keep a connection alive forever. Retiring, the
    // wait is the short grace instead: closing at once would cut off a client
    // whose next request is already on its way (HAProxy's idle-close-on-response).
    if (between_requests && retiring_ && !idle_armed_) {
      idle_armed_ = true;
      transport_.set_timeout(retire_grace_ms_);
    } else if (idle && !idle_armed_) {
      idle_armed_ = true;
      transport_.set_timeout(idle_timeout_ms_);
    }
    transport_.resume_reading();
  }

  // A whole request is in: the handler answers it, now or later (defer()).
  void dispatch() {
    requests_.add();
    ++answered_;
    in_message_ = false;
    // Retiring, the answer says Connection: close; a client that wanted to keep
    // the connection may already be sending (pipelining) and gets a lingering close.
    peer_may_send_ = fast_ ? fast_keep_alive_ : http_should_keep_alive(&parser_) != 0;
    head_request_ = method_code() == HTTP_HEAD;
    awaiting_response_ = true;
    dispatching_ = true;
    try {
      run_handler();
    } catch (const std::exception& e) {
      PF_LOG_ERROR("http: handler: %s %.*s: %s", method_name(), static_cast<int>(url_length_), url().data(),
                   e.what());
      if (awaiting_response_) respond_error(500);
    }
    dispatching_ = false;
    if (awaiting_response_ && !deferred_) {
      PF_LOG_ERROR("http: handler neither answered nor deferred %s %.*s", method_name(),
                   static_cast<int>(url_length_), url().data());
      respond_error(500);
    }
    // Deferred: nothing more is parsed until the answer, so nothing more is read
    // either (a client pipelining meanwhile must not grow input_ without bound);
    // after_parse resumes reading once the answer is queued.
    if (awaiting_response_) transport_.pause_reading();
    // Until the answer is out the peer owes us nothing (a peer that does not read
    // is the send timeout's business). An answer sent at once needs no clearing:
    // the next request's start or the idle wait sets the deadline again.
    if (blocked()) transport_.set_timeout(0);
  }

  void run_handler() {
    if (quick_ == nullptr || !fast_) return handler_.on_request(*this);
    QuickAnswer answer;
    if (quick_->answer_quickly(*this, head_request_, path(), &answer)) send_quick(answer);
  }

  // --- responses -----------------------------------------------------------------

  // A QuickAnswer: what respond(200, headers, Body::shared(...)) would send, without
  // the Body.
  void send_quick(const QuickAnswer& answer) {
    bool keep_alive = false;
    if (!take_answer(&keep_alive)) return;
    const bool send_body = !head_request_ && !answer.body.empty();
    build_head(200, keep_alive, answer.headers, /*no_body=*/false, answer.body.size());
    log_access(200, send_body ? answer.body.size() : 0);
    if (send_body) {
      transport_.write_now(head_, answer.body, *answer.owner);
    } else {
      transport_.write_now(head_, {}, nullptr);
    }
    after_response(keep_alive);
  }

  // The layer writes the status line, Server, Date, Connection and Content-Length;
  // `headers` are the handler's lines. head: send no body (HEAD).
  void send_response(int status, std::string_view headers, http::Body&& body, bool keep_alive, bool head) {
    if (body.kind() == http::Body::Kind::length_only && !head) {
      PF_LOG_ERROR("http: Body::length_only answers only HEAD, not %s %.*s", method_name(),
                   static_cast<int>(url_length_), url().data());
      return send_error(500, keep_alive);
    }
    const bool no_body = bodiless(status);
    const bool send_body = !no_body && !head && body.length() > 0;
    build_head(status, keep_alive, headers, no_body, body.length());
    log_access(status, send_body ? body.length() : 0);
    using Kind = http::Body::Kind;
    if (!send_body) {
      transport_.write_now(head_, {}, nullptr);
    } else if (body.kind() == Kind::bytes) {
      // Copied only if the socket does not take it at once.
      transport_.write_now(head_, body.owned_bytes(), nullptr);
    } else if (body.kind() == Kind::shared) {
      // The cached contents go out as they are: one writev, no copy.
      std::string_view bytes(*body.shared_bytes());
      transport_.write_now(head_, bytes.substr(body.offset(), body.length()), body.shared_bytes());
    } else if (body.kind() == Kind::file) {
      std::shared_ptr<const void> owner = body.fd_owner();
      int fd = body.fd();
      if (!owner) {
        fd = body.release_fd();
        owner = std::make_shared<OwnedFd>(fd);
      }
      transport_.write_file(head_, fd, body.offset(), body.length(), std::move(owner));
    }
    after_response(keep_alive);
  }

  // Status line, Server and Date, Connection when not the version's default, the
  // handler's lines, Content-Length, the blank line: into head_, whose capacity
  // stays from one response to the next.
  //
  // A keep-alive client that asks for the same file again within the second gets
  // the same head, byte for byte: then head_ still holds it and is kept (callgrind:
  // ~300 instructions of appends saved per repeated request).
  void build_head(int status, bool keep_alive, std::string_view headers, bool no_body, std::uint64_t length) {
    using namespace std::string_view_literals;  // appends of known length: no strlen
    if (status < 100 || status > 999) status = 500;  // three digits, whatever a handler passed
    std::time_t second = 0;
    std::string_view server_date = server_and_date(&second);
    // HTTP/1.1 keeps alive by default and 1.0 closes by default; say so only
    // when the default is not what happens.
    // A request too broken to have a version is answered as HTTP/1.1.
    bool http11 = http_major() == 0 || (http_major() == 1 && http_minor() >= 1);
    HeadKey key{status, keep_alive, http11, no_body, length, second, 0, headers.size()};
    if (head_key_.same_as(key) &&
        std::string_view(head_).substr(head_key_.headers_at, headers.size()) == headers)
      return;
    // clear() + append(), not assign(): assign goes through _M_replace, which also
    // handles overlapping sources and costs ~100 instructions more. Room for all of
    // it first: a new connection's head_ grew three times on its first answer, a
    // malloc, copy and free each (~800 instructions per Connection: close request).
    std::string_view status_text = status_line(status);
    // The longest Connection line; "Content-Length: " with 20 digits and CRLF; the blank line.
    constexpr std::size_t kFraming = "Connection: keep-alive\r\n"sv.size() + 16 + 20 + 2 + 2;
    std::size_t needed = status_text.size() + server_date.size() + headers.size() + kFraming;
    if (head_.capacity() < needed) head_.reserve(needed);
    head_.clear();
    head_.append(status_text);
    head_.append(server_date);
    if (!keep_alive && http11) head_.append("Connection: close\r\n"sv);
    if (keep_alive && !http11) head_.append("Connection: keep-alive\r\n"sv);
    key.headers_at = head_.size();
    head_key_ = key;
    head_.append(headers);
    if (!no_body) {
      head_.append("Content-Length: "sv);
      append_number(head_, length);
      head_.append("\r\n"sv);
    }
    head_.append("\r\n"sv);
  }

  // The layer's own errors (a bad request, a limit, a timeout): the handler's page.
  void send_error(int status, bool keep_alive) {
    awaiting_response_ = false;
    http::Response r = error_page(status);
    // A request too broken to parse may not be what its method says: it gets the
    // page even when it looked like HEAD.
    bool head = method_code() == HTTP_HEAD && status != 400;
    send_response(status, r.headers.text(), std::move(r.body), keep_alive, head);
  }

  void after_response(bool keep_alive) {
    if (!keep_alive) return close_after_response();
    // A large file, or a peer that does not read what it pipelined: stop parsing
    // (and reading) until the queue has drained.
    if (transport_.writes_pending() && transport_.write_queue_size() > kMaxQueuedBytes) {
      waiting_for_writes_ = true;
      transport_.pause_reading();
    }
  }

  void close_after_response() {
    closing_ = true;
    if (peer_may_send_) {
      transport_.shutdown_and_linger();
    } else {
      transport_.shutdown_and_close();
    }
  }

  // --- parser callbacks ----------------------------------------------------------
  // A new request, from either path.
  void begin_message() {
    access_headers_.reset();
    in_message_ = true;
    idle_armed_ = false;
    peer_may_send_ = false;
    headers_done_ = false;
    reject_status_ = 0;
    content_length_headers_ = 0;
    host_headers_ = 0;
    transfer_encoding_headers_ = 0;
    transfer_encoding_.clear();
    body_bytes_ = 0;
    header_bytes_ = 0;
    header_deadline_armed_ = false;
    url_at_ = 0;
    url_length_ = 0;
    header_text_.clear();
    headers_.clear();
    body_.clear();
    collect_body_ = false;
    in_value_ = false;
    header_ended_ = false;
    last_was_value_ = false;
  }

  static int on_message_begin(http_parser* p) {
    self(p)->begin_message();
    return 0;
  }
  // The target comes whole before any header, so it is the start of header_text_.
  static int on_url(http_parser* p, const char* at, std::size_t len) {
    auto* s = self(p);
    if (s->url_length_ + len > s->limits_.max_request_line) return s->reject(414);
    s->header_text_.append(at, len);
    s->url_length_ += static_cast<std::uint32_t>(len);
    return s->count_header_bytes(len);
  }
  static int on_header_field(http_parser* p, const char* at, std::size_t len) {
    auto* s = self(p);
    if (s->last_was_value_) s->end_header();
    if (s->headers_.empty() || s->header_ended_) {
      s->headers_.push_back({static_cast<std::uint32_t>(s->header_text_.size()), 0, 0, 0});
      s->in_value_ = false;
      s->header_ended_ = false;
    }
    s->header_text_.append(at, len);
    s->headers_.back().name_length += static_cast<std::uint32_t>(len);
    return s->count_header_bytes(len);
  }
  static int on_header_value(http_parser* p, const char* at, std::size_t len) {
    auto* s = self(p);
    if (s->headers_.empty()) return 0;  // the parser calls field first; defensive
    HeaderSpan& h = s->headers_.back();
    if (!s->in_value_) {
      h.value_at = static_cast<std::uint32_t>(s->header_text_.size());
      s->in_value_ = true;
    }
    s->header_text_.append(at, len);
    h.value_length += static_cast<std::uint32_t>(len);
    s->last_was_value_ = true;
    return s->count_header_bytes(len);
  }
  static int on_headers_complete(http_parser* p) {
    auto* s = self(p);
    if (s->last_was_value_) s->end_header();
    s->headers_done_ = true;
    if (int status = s->check_framing(); status != 0) return s->reject(status);
    if (int status = s->check_request(); status != 0) return s->reject(status);
    // The body, if any, must keep coming: header_timeout between reads. (Without
    // one the deadline armed at the request's start covers the rest of it.)
    if ((p->flags & F_CHUNKED) != 0 || (p->content_length != ULLONG_MAX && p->content_length > 0))
      s->transport_.set_timeout(s->header_timeout_ms_);
    return 0;
  }
  static int on_body(http_parser* p, const char* at, std::size_t len) {
    auto* s = self(p);
    s->body_bytes_ += len;
    // Chunked bodies announce no length; count them as they come.
    if (s->body_bytes_ > s->limits_.max_body_size) return s->reject(413);
    if (s->collect_body_) s->body_.append(at, len);
    s->transport_.set_timeout(s->header_timeout_ms_);
    return 0;
  }
  static int on_message_complete(http_parser* p) {
    http_parser_pause(p, 1);
    return 0;
  }
  // What every request's headers must pass, from either path: RFC 9112 3.2, a 1.1
  // request without Host, or any with two, is a 400; then the handler says whether
  // it wants the body. Returns the status to refuse the request with, or 0.
  int check_request() {
    if (host_headers_ > 1 || (host_headers_ == 0 && http_major() == 1 && http_minor() >= 1)) return 400;
    // No exception may cross the parser's C frames.
    try {
      collect_body_ = handler_.wants_body(*this);
    } catch (const std::exception& e) {
      PF_LOG_ERROR("http: wants_body: %s", e.what());
      return 500;
    }
    return 0;
  }
  // Request smuggling lives in disagreements about where a body ends. The parser
  // (2.9) already refuses a bad or repeated Content-Length and Content-Length
  // with Transfer-Encoding; these are the cases it lets through. Returns the
  // status to refuse the request with, or 0.
  int check_framing() const {
    if (content_length_headers_ > 1) return 400;
    if (transfer_encoding_headers_ > 0) {
      // HTTP/1.0 has no chunked coding: a 1.0 peer and a 1.1 proxy would frame it differently.
      if (parser_.http_major == 1 && parser_.http_minor == 0) return 400;
      // Only plain "chunked": any other coding (gzip, chunked twice, ...) we could
      // not decode and a front end might frame differently.
      if (transfer_encoding_headers_ > 1 || !iequals(trim(transfer_encoding_), "chunked")) return 400;
    }
    if (parser_.content_length != ULLONG_MAX && (parser_.flags & F_CHUNKED) == 0 &&
        parser_.content_length > limits_.max_body_size)
      return 413;
    return 0;
  }
  // A whole header block may arrive in one read, and parser_.nread is reset when
  // it ends; so the callbacks count what they see (plus ": " and CRLF per line).
  int count_header_bytes(std::size_t len) {
    header_bytes_ += len;
    return header_bytes_ > limits_.max_header_size ? reject(431) : 0;
  }
  int reject(int status) {
    reject_status_ = status;
    return -1;  // fails http_parser_execute with HPE_CB_*
  }
  void end_header() {
    header_bytes_ += 4;
    const HeaderSpan& h = headers_.back();
    note_header(header_name(h), header_value(h));
    last_was_value_ = false;
    header_ended_ = true;
  }
  void note_header(std::string_view field, std::string_view value) {
    if (iequals(field, "content-length")) ++content_length_headers_;
    if (iequals(field, "host")) ++host_headers_;
    if (iequals(field, "transfer-encoding")) {
      ++transfer_encoding_headers_;
      transfer_encoding_.assign(value);
    }
    // Only the access log reads these two; with it off, nothing is copied.
    if (access_log::enabled()) access_headers_.note(field, value);
  }

  // One line per response in the access log, if configured; a request the parser
  // rejected has no trustworthy request line.
  void log_access(int status, std::uint64_t body_bytes) {
    if (!access_log::enabled()) return;
    bool parsed = fast_ || HTTP_PARSER_ERRNO(&parser_) == HPE_OK || HTTP_PARSER_ERRNO(&parser_) == HPE_PAUSED;
    std::string remote = transport_.peer_address();
    access_log::write({remote, parsed ? method_name() : "", url(), http_major(), http_minor(), status, body_bytes,
                       &access_headers_});
  }

  StreamTransport& transport_;
  http::Handler& handler_;
  QuickAnswers* const quick_;  // the handler, if it has the shorter way (or null)
  const HttpLimits& limits_;
  const std::uint64_t header_timeout_ms_;
  const std::uint64_t idle_timeout_ms_;
  const std::uint64_t retire_grace_ms_;
  Counter requests_;
  access_log::RequestHeaders access_headers_;
  http_parser parser_{};
  std::string input_;  // bytes received but not yet parsed
  // The request in progress came by the fast path, which read these.
  bool fast_ = false;
  bool fast_keep_alive_ = false;
  unsigned fast_method_ = 0;
  int fast_minor_ = 1;
  // The target and every header of the request in progress, located in
  // header_text_ by url_at_/url_length_ and headers_: http_parser's pieces are
  // appended, the fast path's head is copied whole. Both reused, so a keep-alive
  // connection stops allocating after its first requests.
  std::uint32_t url_at_ = 0, url_length_ = 0;
  std::uint32_t fast_path_length_ = 0;  // of the target, up to its query (fast path)
  std::string header_text_;
  std::vector<HeaderSpan> headers_;
  std::string body_;  // collected when the handler wants_body
  bool collect_body_ = false;
  bool in_value_ = false;      // the last header callback was a value piece
  bool header_ended_ = false;  // end_header() ran for headers_.back()
  bool last_was_value_ = false;
  bool in_message_ = false;
  bool headers_done_ = false;
  bool idle_armed_ = false;
  bool header_deadline_armed_ = false;  // for the request in progress
  int reject_status_ = 0;  // set by a callback that refuses the request
  int content_length_headers_ = 0;
  int host_headers_ = 0;
  int transfer_encoding_headers_ = 0;
  std::string transfer_encoding_;
  std::uint64_t body_bytes_ = 0;
  std::size_t header_bytes_ = 0;
  std::uint64_t answered_ = 0;  // requests answered on this connection
  bool peer_eof_ = false;
  bool retiring_ = false;
  bool peer_may_send_ = false;  // the request being answered asked for keep-alive
  bool head_request_ = false;
  bool closing_ = false;
  bool waiting_for_writes_ = false;
  bool awaiting_response_ = false;  // the handler has the request and has not answered
  bool dispatching_ = false;        // inside handler_.on_request
  std::shared_ptr<http::detail::DeferredState> deferred_;
  std::string head_;  // the response head being sent; reused
  // What head_ was built from (see build_head); the handler's lines are compared
  // as bytes, at headers_at in head_.
  struct HeadKey {
    int status = 0;
    bool keep_alive = false, http11 = false, no_body = false;
    std::uint64_t length = 0;
    std::time_t second = -1;  // of its Date
    std::size_t headers_at = 0, headers_length = 0;
    bool same_as(const HeadKey& o) const {
      return status == o.status && keep_alive == o.keep_alive && http11 == o.http11 && no_body == o.no_body &&
             length == o.length && second == o.second && headers_length == o.headers_length;
    }
  };
  HeadKey head_key_;  // second = -1: nothing built yet
};

const http_parser_settings HttpSession::kSettings = [] {
  http_parser_settings s{};
  s.on_message_begin = on_message_begin;
  s.on_url = on_url;
  s.on_header_field = on_header_field;
  s.on_header_value = on_header_value;
  s.on_headers_complete = on_headers_complete;
  s.on_body = on_body;
  s.on_message_complete = on_message_complete;
  return s;
}();

namespace {

class HttpLayer final : public StreamHandler {
 public:
  HttpLayer(std::unique_ptr<http::Handler> handler, const HttpLimits& limits, Counter requests)
      : handler_(std::move(handler)),
        quick_(dynamic_cast<QuickAnswers*>(handler_.get())),
        limits_(limits),
        requests_(requests) {}
  std::unique_ptr<StreamSession> open_session(StreamTransport& transport) override {
    return std::make_unique<HttpSession>(transport, *handler_, quick_, limits_, requests_);
  }

 private:
  std::unique_ptr<http::Handler> handler_;
  QuickAnswers* quick_;
  HttpLimits limits_;
  Counter requests_;
};

}  // namespace

std::unique_ptr<StreamHandler> make_http_layer(std::unique_ptr<http::Handler> handler, const HttpLimits& limits,
                                               Counter requests) {
  return std::make_unique<HttpLayer>(std::move(handler), limits, requests);
}

namespace http {

std::unique_ptr<StreamHandler> serve(Listener& listener, std::unique_ptr<Handler> handler) {
  if (!handler) throw std::invalid_argument("http::serve: no handler");
  return make_http_layer(std::move(handler), http_limits_of(listener), listener.worker().requests());
}

bool Deferred::pending() const { return state_ && state_->session && state_->session->awaiting(); }

const Request* Deferred::request() const { return pending() ? &state_->session->as_request() : nullptr; }

bool Deferred::respond(int status, std::string_view headers, Body body) {
  if (!pending()) return false;
  state_->session->answer(status, headers, std::move(body));
  return true;
}

bool Deferred::respond_error(int status) {
  if (!pending()) return false;
  state_->session->answer_error(status);
  return true;
}

}  // namespace http
}  // namespace preforkd
