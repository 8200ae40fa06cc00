// Load threads for the reload tests; each request is fully checked and each
// failure classified by what the client saw (refused, reset, EOF, bytes, timeout).
#include "tests/integration/load_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>

namespace itest {
namespace {

constexpr const char* kBody = "hello from preforkd\n";
constexpr std::size_t kErrorLogCap = 100000;

// When the calling load thread began its current request.
thread_local std::chrono::steady_clock::time_point t_request_started;

struct Outcome {
  std::optional<HttpResponse> response;
  ErrorClass error = ErrorClass::timeout;
  std::string detail;
};

// A failed recv/send: a reset is the server's doing; anything else is reported as is.
ErrorClass class_of_errno(int error) {
  return error == ECONNRESET || error == EPIPE || error == ECONNABORTED ? ErrorClass::reset : ErrorClass::send;
}

// Reads more bytes into *buffer before `deadline`; false with *error set on EOF,
// reset or timeout.
bool fill(int fd, std::string* buffer, std::chrono::steady_clock::time_point deadline, ErrorClass* error,
          std::string* detail, const std::atomic<bool>& stop) {
  char chunk[16384];
  while (true) {
    if (stop) {
      *error = ErrorClass::count;  // abandoned: neither an answer nor an error
      return false;
    }
    auto left = std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) {
      *error = ErrorClass::timeout;
      *detail = "no answer in time (" + std::to_string(buffer->size()) + " bytes so far)";
      return false;
    }
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(std::min<long long>(left, 100)));
    if (r < 0 && errno != EINTR) {
      *error = ErrorClass::send;
      *detail = std::string("poll: ") + std::strerror(errno);
      return false;
    }
    if (r <= 0) continue;
    ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n > 0) {
      buffer->append(chunk, static_cast<std::size_t>(n));
      return true;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    *error = n == 0 ? ErrorClass::eof_mid_response : class_of_errno(errno);
    *detail = n == 0 ? "EOF after " + std::to_string(buffer->size()) + " bytes"
                     : std::string("recv: ") + std::strerror(errno);
    return false;
  }
}

// One HTTP response (by Content-Length) from fd, or why there is none.
Outcome read_http(int fd, std::string* carry, Millis timeout, const std::atomic<bool>& stop) {
  Outcome out;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::size_t end;
  while ((end = carry->find("\r\n\r\n")) == std::string::npos)
    if (!fill(fd, carry, deadline, &out.error, &out.detail, stop)) return out;
  HttpResponse response;
  response.head = carry->substr(0, end + 2);
  unsigned long length = 0;
  std::string cl;
  if (std::sscanf(response.head.c_str(), "HTTP/1.%*d %d", &response.status) != 1 ||
      (cl = response.header("Content-Length")).empty() || std::sscanf(cl.c_str(), "%lu", &length) != 1) {
    out.error = ErrorClass::wrong_bytes;
    out.detail = "not a response: " + response.head.substr(0, 200);
    return out;
  }
  while (carry->size() < end + 4 + length)
    if (!fill(fd, carry, deadline, &out.error, &out.detail, stop)) return out;
  response.body = carry->substr(end + 4, length);
  carry->erase(0, end + 4 + length);
  out.response = std::move(response);
  return out;
}

}  // namespace

const char* to_string(ErrorClass error) {
  switch (error) {
    case ErrorClass::connect_refused: return "connect refused";
    case ErrorClass::connect_other: return "connect failed";
    case ErrorClass::reset: return "reset";
    case ErrorClass::eof_mid_response: return "EOF mid-response";
    case ErrorClass::wrong_bytes: return "wrong bytes";
    case ErrorClass::timeout: return "timeout";
    case ErrorClass::send: return "send";
    case ErrorClass::count: break;
  }
  return "?";
}

LoadClient::LoadClient(Kind kind, std::string host, int port, int threads, Millis limit, Millis answer_timeout)
    : kind_(kind),
      host_(std::move(host)),
      port_(port),
      answer_timeout_(answer_timeout.count() > 0 ? answer_timeout : kind == Kind::udp_echo ? Millis(2s) : Millis(5s)),
      deadline_(std::chrono::steady_clock::now() + limit) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this, i] { run(i); });
}

LoadClient::~LoadClient() { stop(); }

void LoadClient::stop() {
  stop_ = true;
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

std::string LoadClient::error_sample() const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& s : samples_) out += s + "\n";
  return out;
}

std::vector<LoadError> LoadClient::error_log() const {
  std::lock_guard lock(mutex_);
  return error_log_;
}

std::string LoadClient::summary() const {
  std::string out = "ok " + std::to_string(ok_) + ", errors " + std::to_string(errors_);
  std::string classes;
  for (std::size_t i = 0; i < by_class_.size(); ++i)
    if (by_class_[i] != 0)
      classes += std::string(classes.empty() ? "" : ", ") + to_string(static_cast<ErrorClass>(i)) + " " +
                 std::to_string(by_class_[i]);
  if (!classes.empty()) out += " (" + classes + ")";
  if (kind_ == Kind::http_keepalive) out += ", reconnects " + std::to_string(reconnects_);
  return out;
}

void LoadClient::record(ErrorClass what, const std::string& detail, bool fresh_connection) {
  if (what == ErrorClass::count) return;  // abandoned by stop()
  ++errors_;
  ++by_class_[static_cast<std::size_t>(what)];
  std::lock_guard lock(mutex_);
  if (error_log_.size() < kErrorLogCap) error_log_.push_back({t_request_started, std::chrono::steady_clock::now(), what, detail, fresh_connection});
  if (samples_.size() < 10) samples_.push_back(std::string(to_string(what)) + ": " + detail);
}

void LoadClient::run(int index) {
  int fd = -1;  // udp_echo: the thread's socket; http_keepalive: its connection
  std::string carry;
  bool answered = false;  // http_keepalive: the connection has carried an answer
  if (kind_ == Kind::udp_echo) {
    fd = socket(host_.find(':') == std::string::npos ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  }
  long sequence = 0;
  while (!stop_ && std::chrono::steady_clock::now() < deadline_) {
    bool good = false;
    t_request_started = std::chrono::steady_clock::now();
    switch (kind_) {
      case Kind::http_close: good = one_http(index); break;
      case Kind::tcp_echo: good = one_tcp_echo(index); break;
      case Kind::udp_echo: good = one_udp_echo(index, fd, sequence++); break;
      case Kind::http_keepalive: good = one_keepalive(&fd, &carry, &answered); break;
    }
    if (good) ++ok_;
  }
  if (fd >= 0) close(fd);
}

bool LoadClient::one_http(int) {
  int fd = connect_tcp(host_, port_, answer_timeout_);
  if (fd < 0) {
    record(errno == ECONNREFUSED ? ErrorClass::connect_refused : ErrorClass::connect_other,
           std::string("connect: ") + std::strerror(errno));
    return false;
  }
  bool good = false;
  if (!send_all(fd, "GET /hello.txt HTTP/1.1\r\nHost: load\r\nConnection: close\r\n\r\n")) {
    record(class_of_errno(errno), std::string("send: ") + std::strerror(errno));
  } else {
    std::string carry;
    Outcome got = read_http(fd, &carry, answer_timeout_, stop_);
    if (!got.response) record(got.error, got.detail);
    else if (got.response->status != 200 || got.response->body != kBody)
      record(ErrorClass::wrong_bytes, "bad response: " + got.response->head);
    else good = true;
  }
  close(fd);
  return good;
}

// One request on the thread's own connection, opened when there is none. The
// server may close a connection only after an answer that says `Connection:
// close`, or while no request is outstanding (a worker retiring closes idle
// ones): both are reconnects. EOF or a reset while a request waits is an error.
bool LoadClient::one_keepalive(int* fd, std::string* carry, bool* answered) {
  auto drop = [&] {
    close(*fd);
    *fd = -1;
    carry->clear();
    *answered = false;
  };
  if (*fd >= 0) {
    pollfd p{*fd, POLLIN, 0};
    if (poll(&p, 1, 0) > 0) {
      char byte;
      ssize_t n = recv(*fd, &byte, 1, MSG_DONTWAIT | MSG_PEEK);
      int error = errno;
      drop();
      if (n > 0) {
        record(ErrorClass::wrong_bytes, "bytes on an idle keep-alive connection");
        return false;
      }
      if (n < 0 && error != EAGAIN) {
        record(class_of_errno(error), std::string("idle keep-alive connection: ") + std::strerror(error));
        return false;
      }
      if (n == 0) ++reconnects_;
    }
  }
  if (*fd < 0) {
    *fd = connect_tcp(host_, port_, answer_timeout_);
    if (*fd < 0) {
      record(errno == ECONNREFUSED ? ErrorClass::connect_refused : ErrorClass::connect_other,
             std::string("connect: ") + std::strerror(errno));
      return false;
    }
  }
  if (!send_all(*fd, "GET /hello.txt HTTP/1.1\r\nHost: load\r\n\r\n")) {
    record(class_of_errno(errno), std::string("keep-alive send: ") + std::strerror(errno), !*answered);
    drop();
    return false;
  }
  Outcome got = read_http(*fd, carry, answer_timeout_, stop_);
  if (!got.response) {
    record(got.error, "keep-alive" + std::string(*answered ? "" : " (first request)") + ": " + got.detail, !*answered);
    drop();
    return false;
  }
  if (got.response->status != 200 || got.response->body != kBody) {
    record(ErrorClass::wrong_bytes, "bad response: " + got.response->head, !*answered);
    drop();
    return false;
  }
  *answered = true;
  if (strcasecmp(got.response->header("Connection").c_str(), "close") == 0) {
    drop();
    ++reconnects_;
  }
  return true;
}

bool LoadClient::one_tcp_echo(int index) {
  int fd = connect_tcp(host_, port_, answer_timeout_);
  if (fd < 0) {
    record(errno == ECONNREFUSED ? ErrorClass::connect_refused : ErrorClass::connect_other,
           std::string("connect: ") + std::strerror(errno));
    return false;
  }
  std::string payload = "echo " + std::to_string(index) + " " + std::to_string(ok_.load());
  bool good = false;
  if (!send_all(fd, payload) || shutdown(fd, SHUT_WR) != 0) {
    record(class_of_errno(errno), std::string("send: ") + std::strerror(errno));
  } else {
    // Everything up to the server's EOF is the echo.
    std::string back;
    auto deadline = std::chrono::steady_clock::now() + answer_timeout_;
    ErrorClass error = ErrorClass::timeout;
    std::string detail;
    while (fill(fd, &back, deadline, &error, &detail, stop_)) {
    }
    if (error != ErrorClass::eof_mid_response) record(error, "echo: " + detail);
    else if (back != payload)
      record(back.empty() ? ErrorClass::eof_mid_response : ErrorClass::wrong_bytes,
             "echo mismatch: sent \"" + payload + "\" got \"" + back + "\"");
    else good = true;
  }
  close(fd);
  return good;
}

bool LoadClient::one_udp_echo(int index, int fd, long sequence) {
  sockaddr_storage ss{};
  socklen_t len;
  if (host_.find(':') == std::string::npos) {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port_));
    inet_pton(AF_INET, host_.c_str(), &v4->sin_addr);
    len = sizeof *v4;
  } else {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port_));
    inet_pton(AF_INET6, host_.c_str(), &v6->sin6_addr);
    len = sizeof *v6;
  }
  std::string payload = "dgram " + std::to_string(index) + " " + std::to_string(sequence);
  if (sendto(fd, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&ss), len) < 0) {
    record(ErrorClass::send, std::string("sendto: ") + std::strerror(errno));
    return false;
  }
  // Each datagram must get its own answer; one that never comes is a loss. Late
  // answers to earlier datagrams are skipped.
  char buf[256];
  auto until = std::chrono::steady_clock::now() + answer_timeout_;
  while (std::chrono::steady_clock::now() < until) {
    if (stop_) return false;  // abandoned, not lost
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0) break;
    if (std::string(buf, static_cast<std::size_t>(n)) == payload) return true;
  }
  record(ErrorClass::timeout, "udp: no answer to \"" + payload + "\"");
  return false;
}

}  // namespace itest
