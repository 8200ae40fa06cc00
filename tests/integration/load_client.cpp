// Load threads for the reload tests; each request is fully checked.
#include "tests/integration/load_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace itest {

LoadClient::LoadClient(Kind kind, std::string host, int port, int threads, Millis limit)
    : kind_(kind), host_(std::move(host)), port_(port), deadline_(std::chrono::steady_clock::now() + limit) {
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

void LoadClient::record(const std::string& what) {
  ++errors_;
  std::lock_guard lock(mutex_);
  if (samples_.size() < 10) samples_.push_back(what);
}

void LoadClient::run(int index) {
  int udp = -1;
  if (kind_ == Kind::udp_echo) {
    udp = socket(host_.find(':') == std::string::npos ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  }
  long sequence = 0;
  while (!stop_ && std::chrono::steady_clock::now() < deadline_) {
    bool good = false;
    switch (kind_) {
      case Kind::http_close: good = one_http(index); break;
      case Kind::tcp_echo: good = one_tcp_echo(index); break;
      case Kind::udp_echo: good = one_udp_echo(index, udp, sequence++); break;
    }
    if (good) ++ok_;
  }
  if (udp >= 0) close(udp);
}

bool LoadClient::one_http(int) {
  int fd = connect_tcp(host_, port_, 5s);
  if (fd < 0) {
    record(std::string("connect: ") + std::strerror(errno));
    return false;
  }
  bool good = false;
  if (!send_all(fd, "GET /hello.txt HTTP/1.1\r\nHost: load\r\nConnection: close\r\n\r\n")) {
    record(std::string("send: ") + std::strerror(errno));
  } else {
    std::string carry;
    auto response = read_response(fd, &carry, false, 5s);
    if (!response) record(std::string("read: no complete response: ") + std::strerror(errno));
    else if (response->status != 200 || response->body != "hello from preforkd\n")
      record("bad response: " + response->head);
    else good = true;
  }
  close(fd);
  return good;
}

bool LoadClient::one_tcp_echo(int index) {
  int fd = connect_tcp(host_, port_, 5s);
  if (fd < 0) {
    record(std::string("connect: ") + std::strerror(errno));
    return false;
  }
  std::string payload = "echo " + std::to_string(index) + " " + std::to_string(ok_.load());
  bool good = false;
  if (!send_all(fd, payload) || shutdown(fd, SHUT_WR) != 0) {
    record(std::string("send: ") + std::strerror(errno));
  } else {
    std::string back = read_until_close(fd, 5s);
    if (back != payload) record("echo mismatch: sent \"" + payload + "\" got \"" + back + "\"");
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
    record(std::string("sendto: ") + std::strerror(errno));
    return false;
  }
  // Each datagram must get its own answer; one that never comes is a loss.
  char buf[256];
  auto until = std::chrono::steady_clock::now() + 2s;
  while (std::chrono::steady_clock::now() < until) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0) break;
    if (std::string(buf, static_cast<std::size_t>(n)) == payload) return true;
  }
  record("udp: no answer to \"" + payload + "\"");
  return false;
}

}  // namespace itest
