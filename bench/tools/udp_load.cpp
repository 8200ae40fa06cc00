// udp_load: load for a UDP echo server. SOCKETS client sockets, each connect()ed to
// the server from its own ephemeral port (so SO_REUSEPORT's 4-tuple hash spreads them
// over the workers), each keeping WINDOW datagrams of SIZE bytes in flight: every echo
// that comes back is answered with a new datagram. A datagram not echoed within
// LOSS_MS is given up on and replaced, so a lost datagram cannot stall its socket.
//
//   udp_load HOST PORT SECONDS [SOCKETS=32] [WINDOW=4] [SIZE=64]
//
// Prints one line, key=value pairs, for bench/bench.py:
//   sent= echoed= lost= late= foreign= send_errors= seconds= rate=
// echoed counts every echo that came back while sending plus a short drain after;
// lost = sent - echoed; late = echoes that came back after they were given up on;
// foreign = datagrams that were not an echo of ours (wrong size or sequence number).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <vector>

#include "bench/tools/tool_util.hpp"

namespace {

using bench_tools::die;
using bench_tools::now_seconds;
using bench_tools::parse_long;

constexpr double kLossSeconds = 0.2;
constexpr double kDrainSeconds = 0.5;

struct Outstanding {
  std::uint64_t seq = 0;
  double sent_at = 0;
  bool used = false;
};

struct Flow {
  int fd = -1;
  std::uint64_t next_seq = 1;
  std::vector<Outstanding> window;
};

struct Totals {
  std::uint64_t sent = 0, echoed = 0, late = 0, foreign = 0, send_errors = 0;
};

// Fills every free window slot of `flow` with a new datagram (unless sending stopped).
void refill(Flow& flow, std::vector<char>& payload, double now, Totals& totals) {
  for (Outstanding& slot : flow.window) {
    if (slot.used) continue;
    std::uint64_t seq = flow.next_seq;
    std::memcpy(payload.data(), &seq, sizeof seq);
    ssize_t n = ::send(flow.fd, payload.data(), payload.size(), 0);
    if (n < 0) {
      // EAGAIN (send buffer full) or ECONNREFUSED (an ICMP error from an earlier
      // datagram): the slot stays free and the periodic sweep tries again.
      ++totals.send_errors;
      return;
    }
    ++flow.next_seq;
    ++totals.sent;
    slot = Outstanding{seq, now, true};
  }
}

void receive(Flow& flow, std::vector<char>& buf, std::size_t size, Totals& totals) {
  for (;;) {
    ssize_t n = ::recv(flow.fd, buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR || errno == ECONNREFUSED) return;
      die("recv");
    }
    std::uint64_t seq = 0;
    if (static_cast<std::size_t>(n) != size) {
      ++totals.foreign;
      continue;
    }
    std::memcpy(&seq, buf.data(), sizeof seq);
    if (seq == 0 || seq >= flow.next_seq) {
      ++totals.foreign;
      continue;
    }
    ++totals.echoed;
    bool found = false;
    for (Outstanding& slot : flow.window) {
      if (slot.used && slot.seq == seq) {
        slot.used = false;
        found = true;
        break;
      }
    }
    if (!found) ++totals.late;
  }
}

}  // namespace

int main(int argc, char** argv) {
  long port = 0, seconds = 0, sockets = 32, window = 4, size = 64;
  if (argc < 4 || argc > 7 || !parse_long(argv[2], 1, 65535, &port) || !parse_long(argv[3], 1, 3600, &seconds) ||
      (argc > 4 && !parse_long(argv[4], 1, 10000, &sockets)) || (argc > 5 && !parse_long(argv[5], 1, 1024, &window)) ||
      (argc > 6 && !parse_long(argv[6], 8, 65000, &size))) {
    std::fprintf(stderr, "usage: udp_load HOST PORT SECONDS [SOCKETS=32] [WINDOW=4] [SIZE=64]\n");
    return 2;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
    std::fprintf(stderr, "udp_load: %s: not an IPv4 address\n", argv[1]);
    return 2;
  }

  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  std::vector<Flow> flows(static_cast<std::size_t>(sockets));
  for (std::size_t i = 0; i < flows.size(); ++i) {
    Flow& f = flows[i];
    f.fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (f.fd < 0) die("socket");
    // connect() fixes the 4-tuple (a distinct source port per socket) and filters
    // out datagrams from anyone else.
    if (connect(f.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) die("connect");
    f.window.resize(static_cast<std::size_t>(window));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, f.fd, &ev) != 0) die("epoll_ctl add");
  }

  std::vector<char> payload(static_cast<std::size_t>(size), 'x');
  std::vector<char> buf(static_cast<std::size_t>(size) + 1024);
  Totals totals;
  double start = now_seconds();
  double stop_sending = start + static_cast<double>(seconds);
  double last_sweep = start;
  for (Flow& f : flows) refill(f, payload, start, totals);
  // The rate counts echoes received while sending, not those of the drain.
  std::uint64_t echoed_at_stop = 0;
  bool stop_recorded = false;

  std::vector<epoll_event> events(256);
  for (;;) {
    double now = now_seconds();
    bool sending = now < stop_sending;
    if (!sending && !stop_recorded) {
      stop_recorded = true;
      echoed_at_stop = totals.echoed;
    }
    if (now >= stop_sending + kDrainSeconds) break;
    int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 20);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    now = now_seconds();
    sending = now < stop_sending;
    for (int i = 0; i < n; ++i) {
      Flow& f = flows[events[i].data.u64];
      receive(f, buf, payload.size(), totals);
      if (sending) refill(f, payload, now, totals);
    }
    // Give up on datagrams not echoed in time and refill: also retries sends that
    // failed with EAGAIN. Every 20 ms is plenty next to a 200 ms loss timeout.
    if (sending && now - last_sweep >= 0.02) {
      last_sweep = now;
      for (Flow& f : flows) {
        for (Outstanding& slot : f.window)
          if (slot.used && now - slot.sent_at > kLossSeconds) slot.used = false;
        refill(f, payload, now, totals);
      }
    }
  }
  double elapsed = static_cast<double>(seconds);
  std::uint64_t lost = totals.sent > totals.echoed ? totals.sent - totals.echoed : 0;
  std::printf("sent=%llu echoed=%llu lost=%llu late=%llu foreign=%llu send_errors=%llu seconds=%.3f rate=%.1f\n",
              static_cast<unsigned long long>(totals.sent), static_cast<unsigned long long>(totals.echoed),
              static_cast<unsigned long long>(lost), static_cast<unsigned long long>(totals.late),
              static_cast<unsigned long long>(totals.foreign), static_cast<unsigned long long>(totals.send_errors),
              elapsed, static_cast<double>(echoed_at_stop) / elapsed);
  for (Flow& f : flows) ::close(f.fd);
  ::close(ep);
  return 0;
}
