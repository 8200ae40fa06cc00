// udp_floor: the floor of what a pre-fork UDP echo server can spend per datagram,
// for bench/run's UDP scenario. The master binds WORKERS SO_REUSEPORT sockets on
// ADDRESS:PORT (one per worker, as preforkd's master does per slot), forks one
// process per socket and closes its copies; each worker does blocking recvfrom +
// sendto, nothing else: no event loop, no batching, no counters.
//
//   udp_floor ADDRESS PORT WORKERS [MAX_DATAGRAM=65536]
//
// TERM, INT or QUIT stop the workers (they die with the master, PR_SET_PDEATHSIG);
// the master exits 0 once it has reaped them. IPv4 only (the benchmark is loopback).
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <vector>

#include "bench/tools/floor_master.hpp"

namespace {

[[noreturn]] void serve(int fd, std::size_t max_datagram) {
  std::vector<char> buf(max_datagram);
  for (;;) {
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    ssize_t n = recvfrom(fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&peer), &len);
    if (n < 0) {
      if (errno == EINTR) continue;
      bench_tools::die("recvfrom");
    }
    // A send error (a full buffer, ICMP from a peer gone) loses this echo only, as
    // it would in any UDP server.
    (void)sendto(fd, buf.data(), static_cast<std::size_t>(n), 0, reinterpret_cast<sockaddr*>(&peer), len);
  }
}

}  // namespace

int main(int argc, char** argv) {
  long port = 0, workers = 0, max_datagram = 65536;
  if (argc < 4 || argc > 5 || !bench_tools::parse_long(argv[2], 1, 65535, &port) ||
      !bench_tools::parse_long(argv[3], 1, 1024, &workers) ||
      (argc > 4 && !bench_tools::parse_long(argv[4], 1, 65536, &max_datagram))) {
    std::fprintf(stderr, "usage: udp_floor ADDRESS PORT WORKERS [MAX_DATAGRAM=65536]\n");
    return 2;
  }
  std::vector<int> sockets;
  for (long i = 0; i < workers; ++i)
    sockets.push_back(bench_tools::reuseport_socket(argv[1], static_cast<int>(port), SOCK_DGRAM));
  return bench_tools::run_workers(sockets, [&](int fd) { serve(fd, static_cast<std::size_t>(max_datagram)); });
}
