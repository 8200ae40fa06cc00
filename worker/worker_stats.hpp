// Per-worker counters, reported to the master in heartbeats and logged at exit.
#pragma once

#include <cstdint>

namespace preforkd {

struct WorkerStats {
  std::uint64_t accepted = 0;  // TCP connections accepted
  std::uint64_t active = 0;    // TCP connections open now
  std::uint64_t requests = 0;  // HTTP responses sent + datagrams echoed
};

}  // namespace preforkd
