// idle_conns: opens COUNT keep-alive HTTP/1.1 connections to one server, completes one
// GET on each, then holds them all open and idle, so that bench/bench.py can measure
// what an idle keep-alive connection costs the server (RSS, kernel socket memory).
//
//   idle_conns HOST PORT PATH COUNT [PARALLEL] [TIMEOUT_SECONDS]
//
// At most PARALLEL connections are being set up at a time (connect + request +
// response), so a server that accepts slowly sees a bounded queue instead of a SYN
// flood; a connection that fails during set-up is retried a few times. When all COUNT
// are answered it prints "ready COUNT ..." on stdout; then it waits until stdin reaches
// EOF or SIGINT/SIGTERM arrives, closes everything and exits. Exit status: 0 all held,
// 1 set-up failed or timed out, 2 usage, 3 the server closed some held connections.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "bench/tools/tool_util.hpp"

namespace {

using bench_tools::die;
using bench_tools::now_seconds;
using bench_tools::parse_long;

constexpr int kMaxAttempts = 5;
constexpr std::uint64_t kSignalTag = UINT64_MAX - 1;
constexpr std::uint64_t kStdinTag = UINT64_MAX - 2;

enum class State { unused, connecting, sending, reading, held, closed };

struct Conn {
  int fd = -1;
  State state = State::unused;
  int attempts = 0;
  std::size_t sent = 0;
  std::string rx;
};

// Returns the response's total length (headers + body) once the headers are in, 0 if
// more bytes are needed, -1 if the response is not a 200 with a Content-Length.
long response_length(const std::string& rx) {
  std::size_t end = rx.find("\r\n\r\n");
  if (end == std::string::npos) return 0;
  if (rx.compare(0, 9, "HTTP/1.1 ") != 0 && rx.compare(0, 9, "HTTP/1.0 ") != 0) return -1;
  if (rx.compare(9, 3, "200") != 0) return -1;
  std::string headers = rx.substr(0, end);
  for (char& c : headers) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::size_t at = headers.find("\r\ncontent-length:");
  if (at == std::string::npos) return -1;
  long body = std::strtol(headers.c_str() + at + 17, nullptr, 10);
  if (body < 0) return -1;
  return static_cast<long>(end + 4) + body;
}

class Client {
 public:
  Client(sockaddr_in addr, std::string request, int count, int parallel)
      : addr_(addr), request_(std::move(request)), conns_(static_cast<std::size_t>(count)), parallel_(parallel) {
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) die("epoll_create1");
  }

  int epoll_fd() const { return epoll_; }
  int answered() const { return answered_; }
  int closed_by_server() const { return closed_by_server_; }
  int retries() const { return retries_; }

  void watch(int fd, std::uint64_t tag, bool optional) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = tag;
    if (epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      // stdin may be /dev/null or a regular file, which epoll refuses (EPERM): then
      // only a signal ends the hold phase.
      if (optional && errno == EPERM) return;
      die("epoll_ctl add");
    }
  }

  // Starts connections until PARALLEL are in set-up or all have been started.
  void start_more() {
    while (in_setup_ < parallel_ && next_ < conns_.size()) {
      start(next_++);
      ++in_setup_;
    }
  }

  // Handles one epoll event for connection `index`.
  void on_event(std::size_t index, std::uint32_t events) {
    Conn& c = conns_[index];
    switch (c.state) {
      case State::connecting: on_connecting(index, events); break;
      case State::sending: send_request(index); break;
      case State::reading: read_response(index); break;
      case State::held: on_held(index); break;
      case State::unused:
      case State::closed: break;
    }
  }

  void close_all() {
    for (Conn& c : conns_) {
      if (c.fd >= 0) ::close(c.fd);
      c.fd = -1;
      c.state = State::closed;
    }
  }

 private:
  void start(std::size_t index) {
    Conn& c = conns_[index];
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) die("socket");
    c.sent = 0;
    c.rx.clear();
    ++c.attempts;
    int rc = connect(c.fd, reinterpret_cast<const sockaddr*>(&addr_), sizeof addr_);
    if (rc != 0 && errno != EINPROGRESS) {
      if (errno == EMFILE || errno == ENFILE || errno == EADDRNOTAVAIL) die("connect");
      c.state = State::connecting;
      retry(index, std::strerror(errno));
      return;
    }
    c.state = State::connecting;
    epoll_event ev{};
    ev.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = index;
    if (epoll_ctl(epoll_, EPOLL_CTL_ADD, c.fd, &ev) != 0) die("epoll_ctl add connection");
  }

  void retry(std::size_t index, const char* why) {
    Conn& c = conns_[index];
    if (c.attempts >= kMaxAttempts) {
      std::fprintf(stderr, "idle_conns: connection %zu failed %d times, last: %s\n", index, c.attempts, why);
      std::exit(1);
    }
    ++retries_;
    if (c.fd >= 0) ::close(c.fd);  // also removes it from the epoll set
    c.fd = -1;
    start(index);
  }

  void on_connecting(std::size_t index, std::uint32_t events) {
    Conn& c = conns_[index];
    int error = 0;
    socklen_t len = sizeof error;
    if (getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0) die("getsockopt SO_ERROR");
    if (error != 0) {
      retry(index, std::strerror(error));
      return;
    }
    if (!(events & EPOLLOUT)) return;
    c.state = State::sending;
    send_request(index);
  }

  void send_request(std::size_t index) {
    Conn& c = conns_[index];
    while (c.sent < request_.size()) {
      ssize_t n = ::send(c.fd, request_.data() + c.sent, request_.size() - c.sent, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return;  // EPOLLOUT calls again
        retry(index, std::strerror(errno));
        return;
      }
      c.sent += static_cast<std::size_t>(n);
    }
    c.state = State::reading;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = index;
    if (epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev) != 0) die("epoll_ctl mod");
  }

  void read_response(std::size_t index) {
    Conn& c = conns_[index];
    char buf[16384];
    for (;;) {
      ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) break;
        retry(index, std::strerror(errno));
        return;
      }
      if (n == 0) {
        retry(index, "closed before the response was complete");
        return;
      }
      c.rx.append(buf, static_cast<std::size_t>(n));
    }
    long want = response_length(c.rx);
    if (want < 0) {
      std::fprintf(stderr, "idle_conns: unexpected response: %.80s\n", c.rx.c_str());
      std::exit(1);
    }
    if (want == 0 || c.rx.size() < static_cast<std::size_t>(want)) return;
    if (c.rx.size() > static_cast<std::size_t>(want)) {
      std::fprintf(stderr, "idle_conns: %zu unexpected bytes after the response\n", c.rx.size() - want);
      std::exit(1);
    }
    c.state = State::held;
    std::string().swap(c.rx);  // the client's own memory is not what is measured, but keep it small
    ++answered_;
    --in_setup_;
    start_more();
  }

  // A held connection is readable only if the server closed it (or sent something
  // unasked); either way it is no longer an idle keep-alive connection.
  void on_held(std::size_t index) {
    Conn& c = conns_[index];
    ::close(c.fd);
    c.fd = -1;
    c.state = State::closed;
    ++closed_by_server_;
  }

  sockaddr_in addr_;
  std::string request_;
  std::vector<Conn> conns_;
  int parallel_;
  int epoll_ = -1;
  std::size_t next_ = 0;
  int in_setup_ = 0;
  int answered_ = 0;
  int retries_ = 0;
  int closed_by_server_ = 0;
};

// Every connection is one descriptor: take the whole hard limit.
void raise_fd_limit(long count) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) die("getrlimit RLIMIT_NOFILE");
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) die("setrlimit RLIMIT_NOFILE");
  if (rl.rlim_cur != RLIM_INFINITY && static_cast<long>(rl.rlim_cur) < count + 16) {
    std::fprintf(stderr, "idle_conns: RLIMIT_NOFILE %llu is too low for %ld connections (raise ulimit -n)\n",
                 static_cast<unsigned long long>(rl.rlim_cur), count);
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  long port = 0, count = 0, parallel = 200, timeout = 120;
  if (argc < 5 || argc > 7 || !parse_long(argv[2], 1, 65535, &port) || !parse_long(argv[4], 1, 1000000, &count) ||
      (argc > 5 && !parse_long(argv[5], 1, 100000, &parallel)) || (argc > 6 && !parse_long(argv[6], 1, 3600, &timeout))) {
    std::fprintf(stderr, "usage: idle_conns HOST PORT PATH COUNT [PARALLEL=200] [TIMEOUT_SECONDS=120]\n");
    return 2;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
    std::fprintf(stderr, "idle_conns: %s: not an IPv4 address\n", argv[1]);
    return 2;
  }
  raise_fd_limit(count);

  // Signals arrive through a signalfd, so the hold phase is one plain epoll loop.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  if (sigprocmask(SIG_BLOCK, &mask, nullptr) != 0) die("sigprocmask");
  int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sfd < 0) die("signalfd");

  std::string request = std::string("GET ") + argv[3] + " HTTP/1.1\r\nHost: " + argv[1] + ":" + argv[2] + "\r\n\r\n";
  Client client(addr, request, static_cast<int>(count), static_cast<int>(parallel));
  client.watch(sfd, kSignalTag, false);
  client.watch(STDIN_FILENO, kStdinTag, true);

  double started = now_seconds();
  bool holding = false;
  bool stop = false;
  client.start_more();
  std::vector<epoll_event> events(1024);
  while (!stop) {
    if (!holding && client.answered() == count) {
      holding = true;
      std::printf("ready %ld connections established and answered in %.3f s (%d set-up retries)\n", count,
                  now_seconds() - started, client.retries());
      std::fflush(stdout);
    }
    int wait_ms = -1;
    if (!holding) {
      double left = static_cast<double>(timeout) - (now_seconds() - started);
      if (left <= 0) {
        std::fprintf(stderr, "idle_conns: only %d of %ld connections answered after %ld s\n", client.answered(),
                     count, timeout);
        client.close_all();
        return 1;
      }
      wait_ms = static_cast<int>(left * 1000) + 1;
    }
    int n = epoll_wait(client.epoll_fd(), events.data(), static_cast<int>(events.size()), wait_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
      std::uint64_t tag = events[i].data.u64;
      if (tag == kSignalTag) {
        stop = true;
      } else if (tag == kStdinTag) {
        char buf[256];
        ssize_t r = ::read(STDIN_FILENO, buf, sizeof buf);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) stop = true;
      } else {
        client.on_event(static_cast<std::size_t>(tag), events[i].events);
      }
    }
  }
  client.close_all();
  if (!holding) {
    std::fprintf(stderr, "idle_conns: stopped after %d of %ld connections were answered\n", client.answered(), count);
    return 1;
  }
  if (client.closed_by_server() > 0) {
    std::fprintf(stderr, "idle_conns: the server closed %d of %ld held connections\n", client.closed_by_server(),
                 count);
    return 3;
  }
  return 0;
}
