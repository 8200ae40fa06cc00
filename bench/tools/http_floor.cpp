// http_floor: the floor of what a pre-fork HTTP server can spend per request, for
// bench/run. The master binds one SO_REUSEPORT socket per worker and forks the
// workers (bench/tools/floor_master.hpp); each worker runs one level-triggered epoll
// loop that accepts, reads a request, finds the end of its headers and writes a
// fixed answer chosen by the request target, keep-alive unless the request said
// `Connection: close`. No parser, no date, no timers, no log, no file system after
// start-up: what is left is the kernel's work plus the least user space around it.
//
//   http_floor ADDRESS PORT WORKERS URLPATH=FILE [URLPATH=FILE ...]
//
// Each FILE is read (small ones) or opened (large ones) at start. Answers up to
// kInlineBody bytes go out as one write of headers + body; larger bodies follow their
// headers with sendfile(2), as nginx's `sendfile on` does. Any other target gets a
// 404 with an empty body. Pipelined requests are answered in order.
//
// FLOOR_CPU_STEERING=1 (bench/run's "floor+cpu", the floor of preforkd+cpu): worker i is
// pinned to CPU i and the group gets a reuseport cBPF program that returns the CPU
// the connection's SYN was processed on, so each connection is served on that CPU.
// On loopback that is the client's CPU: client and server then share a core and
// its caches, and wake each other without an inter-processor interrupt. With
// WORKERS = CPUs every index is a socket; a larger index falls back to the hash.
//
// Why level-triggered: a readable connection costs one read per wake-up. Edge-
// triggered would need a second read to see EAGAIN (or the fragile "short read means
// drained" rule), and EPOLLOUT is asked for only while an answer is incomplete.
#include <fcntl.h>
#include <linux/filter.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bench/tools/floor_master.hpp"

namespace {

using bench_tools::die;

constexpr std::size_t kInlineBody = 16 * 1024;
constexpr std::size_t kRequestBuffer = 8192;

struct Answer {
  std::string target;           // "/small.txt"; empty for the 404
  std::string keepalive, close;  // headers (+ the body when it is inline)
  int file_fd = -1;             // the body, when it goes out with sendfile
  off_t file_size = 0;
};

struct Conn {
  int fd = -1;
  char in[kRequestBuffer];
  std::size_t len = 0;
  // An answer the socket could not take at once.
  const Answer* sending = nullptr;
  std::size_t head_sent = 0;
  off_t body_sent = 0;
  bool close_after = false;
};

std::string headers(int status, std::string_view type, off_t length, bool close) {
  std::string h = status == 200 ? "HTTP/1.1 200 OK\r\n" : "HTTP/1.1 404 Not Found\r\n";
  h += "Content-Type: ";
  h += type;
  h += "\r\nContent-Length: " + std::to_string(length) + "\r\n";
  if (close) h += "Connection: close\r\n";
  return h + "\r\n";
}

Answer load_answer(const std::string& spec) {
  auto eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || spec[0] != '/') {
    std::fprintf(stderr, "http_floor: %s: expected URLPATH=FILE\n", spec.c_str());
    std::exit(2);
  }
  Answer a;
  a.target = spec.substr(0, eq);
  std::string path = spec.substr(eq + 1);
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) die(path.c_str());
  struct stat st {};
  if (fstat(fd, &st) != 0) die("fstat");
  a.file_size = st.st_size;
  std::string_view type = a.target.ends_with(".txt") ? "text/plain" : "application/octet-stream";
  a.keepalive = headers(200, type, st.st_size, false);
  a.close = headers(200, type, st.st_size, true);
  if (static_cast<std::size_t>(st.st_size) <= kInlineBody) {
    std::string body(static_cast<std::size_t>(st.st_size), '\0');
    if (pread(fd, body.data(), body.size(), 0) != st.st_size) die("pread");
    a.keepalive += body;
    a.close += body;
    close(fd);
  } else {
    a.file_fd = fd;
  }
  return a;
}

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c; }

bool starts_with_nocase(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i)
    if (lower(text[i]) != prefix[i]) return false;
  return true;
}

// Whether a header block has "Connection: close" (any case). Only the first byte
// of each line is looked at unless it can start "Connection".
bool asks_to_close(std::string_view head) {
  for (std::size_t at = head.find('\n'); at != std::string_view::npos; at = head.find('\n', at + 1)) {
    std::string_view line = head.substr(at + 1);
    if (line.empty() || lower(line[0]) != 'c' || !starts_with_nocase(line, "connection:")) continue;
    line = line.substr(0, line.find('\r'));
    for (std::size_t i = 11; i + 5 <= line.size(); ++i)
      if (starts_with_nocase(line.substr(i), "close")) return true;
  }
  return false;
}

class Worker {
 public:
  Worker(int listen_fd, std::vector<Answer> answers) : listen_fd_(listen_fd), answers_(std::move(answers)) {
    not_found_.keepalive = headers(404, "text/plain", 0, false);
    not_found_.close = headers(404, "text/plain", 0, true);
  }

  [[noreturn]] void run() {
    if (fcntl(listen_fd_, F_SETFL, O_NONBLOCK) != 0) die("fcntl O_NONBLOCK");
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) die("epoll_create1");
    watch(EPOLL_CTL_ADD, listen_fd_, EPOLLIN);
    epoll_event events[256];
    for (;;) {
      int n = epoll_wait(epoll_, events, 256, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        die("epoll_wait");
      }
      for (int i = 0; i < n; ++i) {
        int fd = events[i].data.fd;
        if (fd == listen_fd_) {
          accept_all();
        } else if (Conn* c = conns_[static_cast<std::size_t>(fd)].get()) {
          if (c->sending)
            continue_answer(*c);
          else
            read_requests(*c);
        }
      }
    }
  }

 private:
  void watch(int op, int fd, std::uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    if (epoll_ctl(epoll_, op, fd, &ev) != 0) die("epoll_ctl");
  }

  void accept_all() {
    for (;;) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) return;
        if (errno == EMFILE || errno == ENFILE) return;  // the next wake-up retries
        die("accept4");
      }
      if (conns_.size() <= static_cast<std::size_t>(fd)) conns_.resize(static_cast<std::size_t>(fd) + 1);
      conns_[static_cast<std::size_t>(fd)] = std::make_unique<Conn>();
      conns_[static_cast<std::size_t>(fd)]->fd = fd;
      watch(EPOLL_CTL_ADD, fd, EPOLLIN);
    }
  }

  void drop(Conn& c) {
    int fd = c.fd;
    close(fd);  // also leaves the epoll set: the fd is in no other process
    conns_[static_cast<std::size_t>(fd)].reset();
  }

  void read_requests(Conn& c) {
    ssize_t n = read(c.fd, c.in + c.len, sizeof c.in - c.len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) return drop(c);
    c.len += static_cast<std::size_t>(n);
    answer_complete_requests(c);
  }

  // Answers every complete request in the buffer, in order, until one answer is
  // left incomplete (the rest wait for EPOLLOUT) or the connection closes.
  void answer_complete_requests(Conn& c) {
    for (;;) {
      std::string_view buf(c.in, c.len);
      auto end = buf.find("\r\n\r\n");
      if (end == std::string_view::npos) {
        if (c.len == sizeof c.in) drop(c);  // headers larger than the buffer
        return;
      }
      std::string_view head = buf.substr(0, end + 2);
      std::string_view target;
      if (auto sp = head.find(' '); sp != std::string_view::npos) {
        auto sp2 = head.find(' ', sp + 1);
        if (sp2 != std::string_view::npos) target = head.substr(sp + 1, sp2 - sp - 1);
      }
      const Answer* a = &not_found_;
      for (const Answer& candidate : answers_)
        if (candidate.target == target) a = &candidate;
      c.close_after = asks_to_close(head);
      std::size_t consumed = end + 4;
      std::memmove(c.in, c.in + consumed, c.len - consumed);
      c.len -= consumed;
      c.sending = a;
      c.head_sent = 0;
      c.body_sent = 0;
      if (!send_answer(c)) {
        watch(EPOLL_CTL_MOD, c.fd, EPOLLOUT);
        return;
      }
      if (c.close_after) return drop(c);
    }
  }

  // True once the whole answer is written (or the connection is dead).
  bool send_answer(Conn& c) {
    const Answer& a = *c.sending;
    const std::string& head = c.close_after ? a.close : a.keepalive;
    bool has_file = a.file_fd >= 0 && a.file_size > 0;
    while (c.head_sent < head.size()) {
      ssize_t n = send(c.fd, head.data() + c.head_sent, head.size() - c.head_sent,
                       MSG_NOSIGNAL | (has_file ? MSG_MORE : 0));
      if (n < 0) {
        if (errno == EAGAIN) return false;
        if (errno == EINTR) continue;
        c.close_after = true;  // reset by the peer: nothing more to do for it
        c.sending = nullptr;
        return true;
      }
      c.head_sent += static_cast<std::size_t>(n);
    }
    while (has_file && c.body_sent < a.file_size) {
      off_t offset = c.body_sent;
      ssize_t n = sendfile(c.fd, a.file_fd, &offset, static_cast<std::size_t>(a.file_size - c.body_sent));
      if (n < 0) {
        if (errno == EAGAIN) return false;
        if (errno == EINTR) continue;
        c.close_after = true;
        c.sending = nullptr;
        return true;
      }
      c.body_sent = offset;
    }
    c.sending = nullptr;
    return true;
  }

  void continue_answer(Conn& c) {
    if (!send_answer(c)) return;
    if (c.close_after) return drop(c);
    watch(EPOLL_CTL_MOD, c.fd, EPOLLIN);
    answer_complete_requests(c);  // requests pipelined behind the long answer
  }

  int listen_fd_;
  int epoll_ = -1;
  std::vector<Answer> answers_;
  Answer not_found_;
  std::vector<std::unique_ptr<Conn>> conns_;  // by fd
};

}  // namespace

int main(int argc, char** argv) {
  long port = 0, workers = 0;
  if (argc < 5 || !bench_tools::parse_long(argv[2], 1, 65535, &port) ||
      !bench_tools::parse_long(argv[3], 1, 1024, &workers)) {
    std::fprintf(stderr, "usage: http_floor ADDRESS PORT WORKERS URLPATH=FILE [URLPATH=FILE ...]\n");
    return 2;
  }
  std::vector<Answer> answers;
  for (int i = 4; i < argc; ++i) answers.push_back(load_answer(argv[i]));
  std::vector<int> sockets;
  for (long i = 0; i < workers; ++i)
    sockets.push_back(bench_tools::reuseport_socket(argv[1], static_cast<int>(port), SOCK_STREAM));
  const char* steering = std::getenv("FLOOR_CPU_STEERING");
  bool by_cpu = steering && std::string_view(steering) == "1";
  if (by_cpu) {
    sock_filter code[] = {BPF_STMT(BPF_LD | BPF_W | BPF_ABS, static_cast<__u32>(SKF_AD_OFF + SKF_AD_CPU)),
                          BPF_STMT(BPF_RET | BPF_A, 0)};
    sock_fprog program{2, code};
    if (setsockopt(sockets.front(), SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &program, sizeof program) != 0)
      die("setsockopt SO_ATTACH_REUSEPORT_CBPF");
  }
  return bench_tools::run_workers(sockets, [&](int fd) { Worker(fd, answers).run(); }, by_cpu);
}
