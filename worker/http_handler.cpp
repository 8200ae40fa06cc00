// The HTTP/1.1 session. The parser is paused at the end of every request, so a
// response is built outside parser callbacks and pipelined requests are answered
// strictly in order: the next one is parsed only when the previous response has
// been queued (or, for a large file, fully streamed).
#include "worker/http_handler.hpp"

#include <fcntl.h>
#include <http_parser.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <string>

#include "common/log.hpp"
#include "worker/access_log.hpp"
#include "worker/http_date.hpp"
#include "worker/mime_types.hpp"
#include "worker/static_path.hpp"

namespace preforkd {
namespace {

// Files up to this size are read whole and sent with the headers in one write;
// larger ones are streamed in chunks of this size, one chunk in flight at a time.
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
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
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

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
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
  HttpSession(StreamTransport& transport, const std::string& root, WorkerStats& stats)
      : transport_(transport), root_(root), stats_(stats) {
    http_parser_init(&parser_, HTTP_REQUEST);
    parser_.data = this;
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

  void on_retire() override {
    retiring_ = true;
    after_parse();
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
      if (error != HPE_OK) {
        PF_LOG_DEBUG("http: bad request: %s", http_errno_description(error));
        send_error(400, /*keep_alive=*/false);
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
    // Idle means between requests of a connection that has had one: a connection
    // that has not yet sent its first request is a client about to send it (it was
    // accepted from the queue moments ago), not an idle keep-alive connection.
    bool idle = input_.empty() && !in_message_ && answered_ > 0;
    if (peer_eof_ || (retiring_ && idle)) {
      // Nothing more will come (or we stop taking more): flush and say goodbye.
      closing_ = true;
      transport_.shutdown_and_close();
      return;
    }
    transport_.resume_reading();
  }

  void respond() {
    ++stats_.requests;
    ++answered_;
    in_message_ = false;
    bool keep_alive = http_should_keep_alive(&parser_) && !retiring_;
    auto method = static_cast<http_method>(parser_.method);
    if (method != HTTP_GET && method != HTTP_HEAD) {
      bool known = method == HTTP_POST || method == HTTP_PUT || method == HTTP_DELETE ||
                   method == HTTP_PATCH || method == HTTP_OPTIONS;
      send_error(known ? 405 : 501, keep_alive);
      return;
    }
    ResolvedPath resolved = resolve_static_path(root_, url_);
    if (resolved.status != 200) {
      send_error(resolved.status, keep_alive);
      return;
    }
    int fd = ::open(resolved.path.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      int status = (fd < 0 && errno == EACCES) ? 403 : 404;
      if (fd >= 0) ::close(fd);
      send_error(status, keep_alive);
      return;
    }
    send_file(fd, st, resolved.path, method == HTTP_HEAD, keep_alive);
  }

  void send_file(int fd, const struct stat& st, std::string_view path, bool head_only, bool keep_alive) {
    std::string last_modified = format_http_date(st.st_mtime);
    if (!if_modified_since_.empty()) {
      auto since = parse_http_date(if_modified_since_);
      if (since && st.st_mtime <= *since) {
        ::close(fd);
        std::string head = status_head(304, keep_alive);
        head += "Last-Modified: " + last_modified + "\r\n\r\n";
        finish_response(std::move(head), {}, keep_alive);
        return;
      }
    }
    auto size = static_cast<std::size_t>(st.st_size);
    std::string head = status_head(200, keep_alive);
    head += "Content-Type: ";
    head += mime_type_for(path);
    head += "\r\nContent-Length: " + std::to_string(size);
    head += "\r\nLast-Modified: " + last_modified + "\r\n\r\n";
    if (head_only || size == 0) {
      ::close(fd);
      finish_response(std::move(head), {}, keep_alive);
      return;
    }
    if (size <= kChunkSize) {
      std::string body(size, '\0');
      bool ok = read_fully(fd, body.data(), size, 0);
      ::close(fd);
      if (!ok) return abort_response();
      finish_response(std::move(head), std::move(body), keep_alive);
      return;
    }
    file_fd_ = fd;
    file_offset_ = 0;
    file_remaining_ = size;
    keep_alive_after_file_ = keep_alive;
    log_access(head, size);
    transport_.pause_reading();
    transport_.write(std::move(head));
  }

  void send_next_chunk() {
    if (file_remaining_ == 0) {
      close_file();
      if (!keep_alive_after_file_) {
        closing_ = true;
        transport_.shutdown_and_close();
        return;
      }
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
    if (!keep_alive) {
      closing_ = true;
      transport_.shutdown_and_close();
      return;
    }
    if (transport_.write_queue_size() > kMaxQueuedBytes) {
      waiting_for_writes_ = true;
      transport_.pause_reading();
    }
  }

  // Parser callbacks: collect the target and the one header we act on.
  static int on_message_begin(http_parser* p) {
    auto* s = self(p);
    s->access_headers_.reset();
    s->in_message_ = true;
    s->url_.clear();
    s->field_.clear();
    s->value_.clear();
    s->if_modified_since_.clear();
    s->last_was_value_ = false;
    return 0;
  }
  static int on_url(http_parser* p, const char* at, std::size_t len) {
    self(p)->url_.append(at, len);
    return 0;
  }
  static int on_header_field(http_parser* p, const char* at, std::size_t len) {
    auto* s = self(p);
    if (s->last_was_value_) s->end_header();
    s->field_.append(at, len);
    return 0;
  }
  static int on_header_value(http_parser* p, const char* at, std::size_t len) {
    auto* s = self(p);
    s->value_.append(at, len);
    s->last_was_value_ = true;
    return 0;
  }
  static int on_headers_complete(http_parser* p) {
    auto* s = self(p);
    if (s->last_was_value_) s->end_header();
    return 0;
  }
  static int on_message_complete(http_parser* p) {
    http_parser_pause(p, 1);
    return 0;
  }
  void end_header() {
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
  const std::string& root_;
  access_log::RequestHeaders access_headers_;
  WorkerStats& stats_;
  http_parser parser_{};
  std::string input_;  // bytes received but not yet parsed
  std::string url_, field_, value_, if_modified_since_;
  bool last_was_value_ = false;
  bool in_message_ = false;
  std::uint64_t answered_ = 0;  // requests answered on this connection
  bool peer_eof_ = false;
  bool retiring_ = false;
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
  s.on_message_complete = on_message_complete;
  return s;
}();

class HttpHandler final : public StreamHandler {
 public:
  HttpHandler(std::string root, WorkerStats& stats) : root_(std::move(root)), stats_(stats) {}
  std::unique_ptr<StreamSession> open_session(StreamTransport& transport) override {
    return std::make_unique<HttpSession>(transport, root_, stats_);
  }

 private:
  std::string root_;
  WorkerStats& stats_;
};

}  // namespace

std::unique_ptr<StreamHandler> make_http_handler(const ListenerConfig& listener, WorkerStats& stats) {
  return std::make_unique<HttpHandler>(listener.root, stats);
}

}  // namespace preforkd
