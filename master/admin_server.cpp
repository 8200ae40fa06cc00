// AdminServer: accept, parse one request with http_parser, answer, close.
#include "master/admin_server.hpp"

#include <http_parser.h>
#include <unistd.h>

#include <string_view>

#include "common/listen_socket.hpp"
#include "common/log.hpp"
#include "master/request_reads.hpp"

namespace preforkd {
namespace {

// A scrape request is a few hundred bytes; anything larger is not for us.
constexpr std::size_t kMaxRequestBytes = 8 * 1024;
// A client that has not sent a whole request by then (or not read the answer) is
// dropped, so idle connections cannot pile up in the master.
constexpr std::uint64_t kConnectionTimeoutMs = 5'000;
// Beyond this many open admin connections new ones are closed at once.
constexpr std::size_t kMaxConnections = 64;

std::string response(int status, const char* reason, std::string_view content_type, const std::string& body,
                     bool head, const char* extra_headers = "") {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\n";
  out += "Content-Type: ";
  out += content_type;
  out += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  out += extra_headers;
  out += "Cache-Control: no-store\r\nConnection: close\r\n\r\n";
  if (!head) out += body;
  return out;
}

}  // namespace

struct AdminServer::Connection {
  Connection(AdminServer& server) : server(server), tcp(this), timer(this) {
    http_parser_init(&parser, HTTP_REQUEST);
    parser.data = this;
    http_parser_settings_init(&settings);
    settings.on_url = [](http_parser* p, const char* at, size_t length) {
      static_cast<Connection*>(p->data)->url.append(at, length);
      return 0;
    };
    settings.on_message_complete = [](http_parser* p) {
      static_cast<Connection*>(p->data)->complete = true;
      http_parser_pause(p, 1);  // one request per connection: ignore anything after it
      return 0;
    };
  }

  void on_bytes(const char* data, std::size_t length) {
    received += length;
    std::size_t parsed = http_parser_execute(&parser, &settings, data, length);
    if (complete) return answer();
    if (HTTP_PARSER_ERRNO(&parser) != HPE_OK || parsed != length) {
      return reply(response(400, "Bad Request", "text/plain", "bad request\n", false));
    }
    if (received > kMaxRequestBytes) {
      return reply(response(431, "Request Header Fields Too Large", "text/plain", "request too large\n", false));
    }
  }

  // start_request_reads' callbacks. EOF or an error before a whole request: gone.
  void on_deadline() { server.finish(this); }
  void on_read_end(ssize_t, uv_stream_t*) { server.finish(this); }

  void answer() {
    bool head = parser.method == HTTP_HEAD;
    if (parser.method != HTTP_GET && !head) {
      return reply(response(405, "Method Not Allowed", "text/plain", "only GET\n", false, "Allow: GET, HEAD\r\n"));
    }
    std::string_view path(url);
    if (auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
    if (path == "/metrics") {
      return reply(response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", server.provider_.metrics_text(), head));
    }
    if (path == "/status") {
      return reply(response(200, "OK", "application/json", server.provider_.status_json(), head));
    }
    reply(response(404, "Not Found", "text/plain", "not found: try /metrics or /status\n", head));
  }

  // Writes the whole answer, then closes (the write callback finishes us).
  void reply(std::string bytes) {
    if (replied) return;
    replied = true;
    uv_read_stop(tcp.stream());
    auto request = std::make_unique<WriteRequest>();
    request->bytes = std::move(bytes);
    uv_buf_t buf = uv_buf_init(request->bytes.data(), static_cast<unsigned>(request->bytes.size()));
    int rc = uv_write(&request->req, tcp.stream(), &buf, 1, on_written);
    if (rc != 0) {
      PF_LOG_WARN("admin: write: %s", uv_strerror(rc));
      return server.finish(this);
    }
    request.release();  // owned by the write until on_written
  }

  struct WriteRequest {
    uv_write_t req{};
    std::string bytes;
  };

  static void on_written(uv_write_t* req, int status) {
    std::unique_ptr<WriteRequest> request(reinterpret_cast<WriteRequest*>(req));
    auto* self = owner_of<Connection>(req->handle);
    if (status != 0 && status != UV_ECANCELED) PF_LOG_DEBUG("admin: write: %s", uv_strerror(status));
    if (self) self->server.finish(self);
  }

  AdminServer& server;
  UvHandle<uv_tcp_t> tcp;
  UvHandle<uv_timer_t> timer;
  http_parser parser{};
  http_parser_settings settings{};
  std::string url;
  std::size_t received = 0;
  bool complete = false;
  bool replied = false;
  char read_buffer[4096];
};

AdminServer::AdminServer(uv_loop_t* loop, Provider& provider) : loop_(loop), provider_(provider) {}

AdminServer::~AdminServer() { close(); }

bool AdminServer::listen(const SocketAddress& address, std::string* error) {
  int fd = open_listen_socket(address, Transport::stream, 64, /*reuseport=*/true, error);
  if (fd < 0) return false;
  listener_ = UvHandle<uv_tcp_t>(this);
  int rc = uv_tcp_init(loop_, listener_.get());
  if (rc == 0) {
    listener_.mark_initialized();
    rc = uv_tcp_open(listener_.get(), fd);
    if (rc != 0) ::close(fd);
  } else {
    ::close(fd);
  }
  if (rc == 0) rc = uv_listen(listener_.stream(), 64, on_connection);
  if (rc != 0) {
    *error = "admin listener " + address.to_string() + ": " + uv_strerror(rc);
    listener_.reset();
    return false;
  }
  return true;
}

void AdminServer::close() {
  listener_.reset();
  connections_.clear();  // each Connection's handles close themselves
}

void AdminServer::on_connection(uv_stream_t* stream, int status) {
  auto* self = owner_of<AdminServer>(stream);
  if (!self) return;
  if (status != 0) {
    PF_LOG_WARN("admin: accept: %s", uv_strerror(status));
    return;
  }
  auto connection = std::make_unique<Connection>(*self);
  Connection* c = connection.get();
  int rc = uv_tcp_init(self->loop_, c->tcp.get());
  if (rc == 0) {
    c->tcp.mark_initialized();
    rc = uv_accept(stream, c->tcp.stream());
  }
  if (rc != 0) {
    PF_LOG_WARN("admin: accept: %s", uv_strerror(rc));
    return;  // the connection's destructor closes what was opened
  }
  if (self->connections_.size() >= kMaxConnections) {
    PF_LOG_WARN("admin: %zu connections open; closing a new one", self->connections_.size());
    return;
  }
  rc = start_request_reads(self->loop_, *c, c->tcp.stream(), kConnectionTimeoutMs);
  if (rc != 0) {
    PF_LOG_WARN("admin: connection set-up: %s", uv_strerror(rc));
    return;
  }
  self->connections_[c] = std::move(connection);
}

void AdminServer::finish(Connection* connection) { connections_.erase(connection); }

}  // namespace preforkd
