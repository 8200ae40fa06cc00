// Exponential restart backoff.
#include "master/backoff.hpp"

namespace preforkd {

std::uint64_t restart_delay_ms(const BackoffPolicy& policy, unsigned failures) {
  if (failures <= 1) return 0;
  std::uint64_t delay = policy.base_ms;
  for (unsigned i = 2; i < failures && delay < policy.cap_ms; ++i) delay *= 2;
  return delay < policy.cap_ms ? delay : policy.cap_ms;
}

}  // namespace preforkd
