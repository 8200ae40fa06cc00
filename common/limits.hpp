// Bounds and defaults shared by the config loader and the worker. The per-listener
// limits of the HTTP layer are declared in worker/http_keys.cpp (http::declare_keys).
#pragma once

#include <cstddef>
#include <cstdint>

namespace preforkd {

// http-parser refuses headers over its own HTTP_MAX_HEADER_SIZE (80 KiB) with a
// generic error; keeping ours below it means our limit, and our 431, always apply.
inline constexpr std::size_t kMaxHeaderSizeLimit = 64 * 1024;
inline constexpr std::size_t kMaxDatagramSizeLimit = 64 * 1024;
inline constexpr int kDefaultMaxConnections = 10000;
// nginx's send_timeout: queued output making no progress this long closes a connection.
inline constexpr double kDefaultSendTimeoutSeconds = 60;

// Timer milliseconds for a configured duration; never 0, which timers read as "off".
inline std::uint64_t to_timer_ms(double seconds) {
  auto ms = static_cast<std::uint64_t>(seconds * 1000);
  return ms == 0 ? 1 : ms;
}

}  // namespace preforkd
