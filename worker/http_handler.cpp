// The HTTP/1.1 session. The parser is paused at the end of every request, so a
// response is built outside parser callbacks and pipelined requests are answered
// strictly in order: the next one is parsed only when the previous response has
// been queued (or, for a large file, fully streamed).
#include "worker/http_handler.hpp"

#include <fcntl.h>
#include <http_parser.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <ctime>
#include <string>

#include "common/log.hpp"
#include "worker/ascii.hpp"
#include "worker/file_cache.hpp"
#include "worker/access_log.hpp"
#include "worker/http_date.hpp"
#include "worker/mime_types.hpp"

namespace preforkd {
namespace {

// Files too large for the cache (FileCache::kMaxBodyBytes) are streamed in chunks
// of this size, one chunk in flight at a time.
constexpr std::size_t kChunkSize = 256 * 1024;
// Pipelined requests stop being parsed while this much output waits for the peer.
constexpr std::size_t kMaxQueuedBytes = 1 << 20;

const char* reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
  }
  return "Unknown";
}

// The Date header changes once a second; format it once a second.
const std::string& current_http_date() {
  static std::time_t cached_at = 0;
  static std::string cached;
  std::time_t now = std::time(nullptr);
  if (now != cached_at) {
    cached = format_http_date(now);
    cached_at = now;
  }
  return cached;
}

bool read_fully(int fd, char* out, std::size_t size, off_t offset) {
  std::size_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(fd, out + done, size - done, offset + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;  // error, or the file shrank under us
    done += static_cast<std::size_t>(n);
  }
  return true;
}

class HttpSession final : public StreamSession {
 public:
  HttpSession(StreamTransport& transport, FileCache& files, const ListenerLimits& limits, WorkerStats& stats)
      : transport_(transport),
        files_(files),
        limits_(limits),
        header_timeout_ms_(to_timer_ms(limits.header_timeout_s)),
        idle_timeout_ms_(to_timer_ms(limits.idle_timeout_s)),
        retire_grace_ms_(std::min(to_timer_ms(limits.retire_idle_grace_s), idle_timeout_ms_)),
        stats_(stats) {
    http_parser_init(&parser_, HTTP_REQUEST);
    parser_.data = this;
    // The first request has header_timeout to arrive, like every later one.
    transport_.set_timeout(header_timeout_ms_);
  }
  ~HttpSession() override { close_file(); }

  void on_data(std::string_view bytes) override {
    if (closing_) return;
    if (input_.empty()) {
      std::size_t used = parse(bytes);
      input_.assign(bytes.substr(used));
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
    if (file_fd_ >= 0) {
      send_next_chunk();
      return;
    }
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

 private:
  static const http_parser_settings kSettings;
  static HttpSession* self(http_parser* p) { return static_cast<HttpSession*>(p->data); }

  bool blocked() const { return closing_ || file_fd_ >= 0 || waiting_for_writes_; }

  // Parses as many whole requests as possible and answers each; returns bytes used.
  std::size_t parse(std::string_view data) {
    std::size_t used = 0;
    while (used < data.size() && !blocked()) {
      std::size_t n = http_parser_execute(&parser_, &kSettings, data.data() + used, data.size() - used);
      used += n;
      auto error = HTTP_PARSER_ERRNO(&parser_);
      if (error == HPE_PAUSED) {
        http_parser_pause(&parser_, 0);
        respond();
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
    return used;
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

  void respond() {
    // From here until the response is queued the peer owes us nothing; a peer
    // that does not read is the send timeout's business.
    transport_.set_timeout(0);
    ++stats_.requests;
    ++answered_;
    in_message_ = false;
    // Retiring, the answer says Connection: close; a client that wanted to keep
    // the connection may already be sending (pipelining) and gets a lingering close.
    peer_may_send_ = http_should_keep_alive(&parser_);
    bool keep_alive = peer_may_send_ && !retiring_;
    auto method = static_cast<http_method>(parser_.method);
    if (method != HTTP_GET && method != HTTP_HEAD) {
      bool known = method == HTTP_POST || method == HTTP_PUT || method == HTTP_DELETE ||
                   method == HTTP_PATCH || method == HTTP_OPTIONS;
      send_error(known ? 405 : 501, keep_alive);
      return;
    }
    FileLookup found = files_.lookup(url_, coarse_now_ms());
    if (found.status != 200) {
      send_error(found.status, keep_alive);
      return;
    }
    send_file(*found.file, method == HTTP_HEAD, keep_alive);
  }

  void send_file(const StaticFile& file, bool head_only, bool keep_alive) {
    if (!if_modified_since_.empty()) {
      auto since = parse_http_date(if_modified_since_);
      if (since && file.st.st_mtime <= *since) {
        std::string head = status_head(304, keep_alive);
        head += "Last-Modified: " + file.last_modified + "\r\n\r\n";
        finish_response(std::move(head), {}, keep_alive);
        return;
      }
    }
    if (head_only || file.st.st_size == 0) {
      finish_response(status_head(200, keep_alive) + file.headers, {}, keep_alive);
      return;
    }
    if (file.body) {
      // The cached contents go out as they are: one writev, no copy.
      std::string head = status_head(200, keep_alive) + file.headers;
      log_access(head, file.body->size());
      transport_.write_shared(std::move(head), file.body);
      after_response(keep_alive);
      return;
    }
    stream_file(file.path, keep_alive);
  }

  // Large files: opened per request and sent in chunks, one in flight at a time.
  // The headers come from this open's fstat, not the cache, so that
  // Content-Length matches what is sent.
  void stream_file(const std::string& path, bool keep_alive) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      int status = fd >= 0 ? 404 : status_for_open_error(errno);
      if (fd >= 0) ::close(fd);
      send_error(status, keep_alive);
      return;
    }
    std::string head = status_head(200, keep_alive);
    head += "Content-Type: ";
    head += mime_type_for(path);
    head += "\r\nContent-Length: " + std::to_string(st.st_size);
    head += "\r\nLast-Modified: " + format_http_date(st.st_mtime) + "\r\n\r\n";
    file_fd_ = fd;
    file_offset_ = 0;
    file_remaining_ = static_cast<std::size_t>(st.st_size);
    keep_alive_after_file_ = keep_alive;
    log_access(head, file_remaining_);
    transport_.pause_reading();
    transport_.write(std::move(head));
  }

  void send_next_chunk() {
    if (file_remaining_ == 0) {
      close_file();
      if (!keep_alive_after_file_) return close_after_response();
      resume();
      return;
    }
    std::size_t n = std::min(file_remaining_, kChunkSize);
    std::string chunk(n, '\0');
    if (!read_fully(file_fd_, chunk.data(), n, file_offset_)) return abort_response();
    file_offset_ += static_cast<off_t>(n);
    file_remaining_ -= n;
    transport_.write(std::move(chunk));
  }

  // The promised Content-Length can no longer be honoured: the only honest end is
  // to close, so the client sees a truncated response rather than a wrong one.
  void abort_response() {
    PF_LOG_WARN("http: file changed while being sent; closing connection");
    close_file();
    closing_ = true;
    transport_.close();
  }

  void close_file() {
    if (file_fd_ >= 0) ::close(file_fd_);
    file_fd_ = -1;
  }

  std::string status_head(int status, bool keep_alive) const {
    std::string head;
    head.reserve(256);
    head += "HTTP/1.1 ";
    head += std::to_string(status);
    head += ' ';
    head += reason_phrase(status);
    head += "\r\nServer: preforkd\r\nDate: ";
    head += current_http_date();
    // HTTP/1.1 keeps alive by default and 1.0 closes by default; say so only
    // when the default is not what happens.
    // A request too broken to have a version is answered as HTTP/1.1.
    bool http11 = parser_.http_major == 0 || (parser_.http_major == 1 && parser_.http_minor >= 1);
    if (!keep_alive && http11) head += "\r\nConnection: close";
    if (keep_alive && !http11) head += "\r\nConnection: keep-alive";
    head += "\r\n";
    return head;
  }

  void send_error(int status, bool keep_alive) {
    std::string body = "<html><head><title>" + std::to_string(status) + " " + reason_phrase(status) +
                       "</title></head><body><h1>" + std::to_string(status) + " " +
                       reason_phrase(status) + "</h1></body></html>\n";
    std::string head = status_head(status, keep_alive);
    if (status == 405) head += "Allow: GET, HEAD\r\n";
    head += "Content-Type: text/html; charset=utf-8\r\nContent-Length: " + std::to_string(body.size()) +
            "\r\n\r\n";
    if (static_cast<http_method>(parser_.method) == HTTP_HEAD && status != 400) body.clear();
    finish_response(std::move(head), std::move(body), keep_alive);
  }

  void finish_response(std::string head, std::string body, bool keep_alive) {
    log_access(head, body.size());
    transport_.write(std::move(head), std::move(body));
    after_response(keep_alive);
  }

  void after_response(bool keep_alive) {
    if (!keep_alive) return close_after_response();
    if (transport_.write_queue_size() > kMaxQueuedBytes) {
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

  // Parser callbacks: collect the target and the one header we act on.
  static int on_message_begin(http_parser* p) {
    auto* s = self(p);
    s->access_headers_.reset();
    s->in_message_ = true;
    s->idle_armed_ = false;
    s->peer_may_send_ = false;
    s->headers_done_ = false;
    s->reject_status_ = 0;
    s->content_length_headers_ = 0;
    s->transfer_encoding_headers_ = 0;
    s->transfer_encoding_.clear();
    s->body_bytes_ = 0;
    s->header_bytes_ = 0;
    s->transport_.set_timeout(s->header_timeout_ms_);
    s->url_.clear();
    s->field_.clear();
    s->value_.clear();
    s->if_modified_since_.clear();
    s->last_was_value_ = false;
    return 0;
  }
  static int on_url(http_parser* p, const char* at, std::size_t len) {
    auto* s = self(p);
    if (s->url_.size() + len > s->limits_.max_request_line) return s->reject(414);
    s->url_.append(at, len);
    return s->count_header_bytes(len);
  }
  static int on_header_field(http_parser* p, const char* at, std::size_t len) {
    auto* s = self(p);
    if (s->last_was_value_) s->end_header();
    s->field_.append(at, len);
    return s->count_header_bytes(len);
  }
  static int on_header_value(http_parser* p, const char* at, std::size_t len) {
    auto* s = self(p);
    s->value_.append(at, len);
    s->last_was_value_ = true;
    return s->count_header_bytes(len);
  }
  static int on_headers_complete(http_parser* p) {
    auto* s = self(p);
    if (s->last_was_value_) s->end_header();
    s->headers_done_ = true;
    if (int status = s->check_framing(); status != 0) return s->reject(status);
    // The body, if any, must keep coming: header_timeout between reads.
    s->transport_.set_timeout(s->header_timeout_ms_);
    return 0;
  }
  static int on_body(http_parser* p, const char*, std::size_t len) {
    auto* s = self(p);
    s->body_bytes_ += len;
    // Chunked bodies announce no length; count them as they come.
    if (s->body_bytes_ > s->limits_.max_body_size) return s->reject(413);
    s->transport_.set_timeout(s->header_timeout_ms_);
    return 0;
  }
  static int on_message_complete(http_parser* p) {
    http_parser_pause(p, 1);
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
  static std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
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
    if (iequals(field_, "content-length")) ++content_length_headers_;
    if (iequals(field_, "transfer-encoding")) {
      ++transfer_encoding_headers_;
      transfer_encoding_ = value_;
    }
    if (iequals(field_, "if-modified-since")) if_modified_since_ = value_;
    access_headers_.note(field_, value_);
    field_.clear();
    value_.clear();
    last_was_value_ = false;
  }

  // One line per response in the access log, if configured; a request the parser
  // rejected has no trustworthy request line.
  void log_access(const std::string& head, std::size_t body_bytes) {
    if (!access_log::enabled()) return;
    int status = access_log::status_of(head);
    bool parsed = HTTP_PARSER_ERRNO(&parser_) == HPE_OK || HTTP_PARSER_ERRNO(&parser_) == HPE_PAUSED;
    std::string remote = transport_.peer_address();
    access_log::write({remote, parsed ? http_method_str(static_cast<http_method>(parser_.method)) : "", url_,
                       parser_.http_major, parser_.http_minor, status, body_bytes, &access_headers_});
  }

  StreamTransport& transport_;
  FileCache& files_;
  const ListenerLimits& limits_;
  const std::uint64_t header_timeout_ms_;
  const std::uint64_t idle_timeout_ms_;
  const std::uint64_t retire_grace_ms_;
  access_log::RequestHeaders access_headers_;
  WorkerStats& stats_;
  http_parser parser_{};
  std::string input_;  // bytes received but not yet parsed
  std::string url_, field_, value_, if_modified_since_;
  bool last_was_value_ = false;
  bool in_message_ = false;
  bool headers_done_ = false;
  bool idle_armed_ = false;
  int reject_status_ = 0;  // set by a callback that refuses the request
  int content_length_headers_ = 0;
  int transfer_encoding_headers_ = 0;
  std::string transfer_encoding_;
  std::uint64_t body_bytes_ = 0;
  std::size_t header_bytes_ = 0;
  std::uint64_t answered_ = 0;  // requests answered on this connection
  bool peer_eof_ = false;
  bool retiring_ = false;
  bool peer_may_send_ = false;  // the request being answered asked for keep-alive
  bool closing_ = false;
  bool waiting_for_writes_ = false;
  int file_fd_ = -1;
  off_t file_offset_ = 0;
  std::size_t file_remaining_ = 0;
  bool keep_alive_after_file_ = false;
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

class HttpHandler final : public StreamHandler {
 public:
  HttpHandler(std::string root, const ListenerLimits& limits, WorkerStats& stats)
      : files_(std::move(root)), limits_(limits), stats_(stats) {}
  std::unique_ptr<StreamSession> open_session(StreamTransport& transport) override {
    return std::make_unique<HttpSession>(transport, files_, limits_, stats_);
  }

 private:
  FileCache files_;
  ListenerLimits limits_;
  WorkerStats& stats_;
};

}  // namespace

std::unique_ptr<StreamHandler> make_http_handler(const ListenerConfig& listener, WorkerStats& stats) {
  return std::make_unique<HttpHandler>(listener.root, listener.limits, stats);
}

}  // namespace preforkd
