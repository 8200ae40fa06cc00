// reuseport_close_race: does closing a listener that steering already avoids
// reset handshakes racing the close? The experiment behind SlotSockets'
// refuse-before-close (master/slot_sockets.cpp; the lifecycle torture test saw
// "connect: Connection reset by peer" when a TTOU'd slot's socket closed).
//
//   reuseport_close_race PORT CYCLES [REFUSE_FIRST=0|1]
//
// One SO_REUSEPORT listener on 127.0.0.1:PORT is steered to (the master's
// reuseport program, to index 0 only) and served by a thread; two client threads open
// connections in a loop (connect, 1 byte, its echo). Meanwhile CYCLES times a
// second socket joins the group and closes again, with SYNs refused first when
// REFUSE_FIRST is 1 (common/listen_socket.hpp's filter). Prints the connections
// answered and the ones reset; a connect or read that times out (3 s, bounded)
// counts as "other" (the last connection of each client thread, cut off at the
// end, lands there). Measured on kernel 6.18, 2 cores: 5 resets in 300,000
// closes without the filter, 0 in 300,000 with it.
#include <arpa/inet.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "bench/tools/tool_util.hpp"
#include "common/address.hpp"
#include "common/listen_socket.hpp"
#include "master/reuseport_program.hpp"

#ifndef SO_ATTACH_REUSEPORT_CBPF
#define SO_ATTACH_REUSEPORT_CBPF 51
#endif

namespace {

sockaddr_in loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// As the master opens a slot's socket.
int open_listener(const preforkd::SocketAddress& address) {
  std::string error;
  int fd = preforkd::open_listen_socket(address, preforkd::Transport::stream, 1024, /*reuseport=*/true, &error);
  if (fd < 0) {
    std::fprintf(stderr, "%s\n", error.c_str());
    std::exit(1);
  }
  return fd;
}

struct Counts {
  std::atomic<long> answered{0}, reset{0}, other{0};
};

void serve(int fd, const std::atomic<bool>& stop) {
  while (!stop) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    for (int c; (c = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC)) >= 0;) {
      char byte;
      pollfd q{c, POLLIN, 0};
      bool echoed = poll(&q, 1, 1000) > 0 && read(c, &byte, 1) == 1 && write(c, &byte, 1) == 1;
      (void)echoed;  // the client counts what it did not get back
      close(c);
    }
  }
}

void client(int port, const std::atomic<bool>& stop, Counts& counts) {
  while (!stop) {
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c < 0) bench_tools::die("socket");
    timeval limit{3, 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);  // bounds connect() too
    sockaddr_in a = loopback(port);
    char byte = 'x';
    bool ok = connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && write(c, &byte, 1) == 1 &&
              read(c, &byte, 1) == 1;
    if (ok) ++counts.answered;
    else if (errno == ECONNRESET || errno == EPIPE) ++counts.reset;
    else ++counts.other;
    close(c);
  }
}

}  // namespace

int main(int argc, char** argv) {
  long port = 0, cycles = 0, refuse_first = 0;
  if (argc < 3 || argc > 4 || !bench_tools::parse_long(argv[1], 1, 65535, &port) ||
      !bench_tools::parse_long(argv[2], 1, 100'000'000, &cycles) ||
      (argc == 4 && !bench_tools::parse_long(argv[3], 0, 1, &refuse_first))) {
    std::fprintf(stderr, "usage: %s PORT CYCLES [REFUSE_FIRST=0|1]\n", argv[0]);
    return 2;
  }
  auto address = preforkd::parse_address("127.0.0.1:" + std::to_string(port));
  if (!address) return 2;
  int steered = open_listener(*address);
  // The master's steering program, to index 0 (`steered`) only.
  std::vector<sock_filter> code = preforkd::reuseport_steering_program({0});
  sock_fprog program{static_cast<unsigned short>(code.size()), code.data()};
  if (setsockopt(steered, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &program, sizeof program) != 0)
    bench_tools::die("setsockopt(SO_ATTACH_REUSEPORT_CBPF)");

  std::atomic<bool> stop{false};
  Counts counts;
  std::thread server(serve, steered, std::cref(stop));
  std::vector<std::thread> clients;
  for (int i = 0; i < 2; ++i) clients.emplace_back(client, static_cast<int>(port), std::cref(stop), std::ref(counts));
  double t0 = bench_tools::now_seconds();
  for (long i = 0; i < cycles; ++i) {
    int passing = open_listener(*address);
    usleep(50);  // let clients' SYNs meet a group of two
    std::string error;
    if (refuse_first && !preforkd::refuse_new_connections(passing, preforkd::Transport::stream, &error)) {
      std::fprintf(stderr, "%s\n", error.c_str());
      return 1;
    }
    close(passing);
  }
  double seconds = bench_tools::now_seconds() - t0;
  stop = true;
  for (auto& t : clients) t.join();
  server.join();
  close(steered);
  std::printf("closes=%ld refuse_first=%ld seconds=%.1f answered=%ld reset=%ld other=%ld\n", cycles, refuse_first,
              seconds, counts.answered.load(), counts.reset.load(), counts.other.load());
  return 0;
}
