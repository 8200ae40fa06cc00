// What the running kernel guarantees about SO_REUSEPORT listeners, logged at start-up.
#pragma once

namespace preforkd {

void log_kernel_features();

}  // namespace preforkd
