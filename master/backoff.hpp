// Restart delays for a crashing worker slot: immediate the first time (a one-off
// crash should cost nothing), then doubling from a base up to a cap, so a crash
// loop costs a bounded, small amount of CPU.
#pragma once

#include <cstdint>

namespace preforkd {

struct BackoffPolicy {
  std::uint64_t base_ms = 100;
  std::uint64_t cap_ms = 10'000;
  // A worker that stayed up this long is healthy again: its next crash restarts at
  // once. Short, because an operator's kill -9 of a healthy worker should cost no
  // delay; a worker crashing faster than this backs off.
  std::uint64_t healthy_after_ms = 1'000;
  // From this many consecutive failures on, the slot is reported as a crash loop.
  unsigned crash_loop_after = 5;
};

// failures: consecutive failures so far, including the one just seen (1 = first).
std::uint64_t restart_delay_ms(const BackoffPolicy& policy, unsigned failures);

}  // namespace preforkd
