// Per-listener limits against hostile or broken clients. Defaults follow nginx
// (large_client_header_buffers 8k, client_max_body_size 1m, client_header_timeout
// 60s shortened to 10s, keepalive_timeout 75s shortened to 60s, send_timeout 60s).
#pragma once

#include <cstddef>
#include <cstdint>

namespace preforkd {

struct ListenerLimits {
  // http only
  std::size_t max_request_line = 8 * 1024;  // longest request target (URL), else 414
  std::size_t max_header_size = 16 * 1024;  // request line + headers, else 431
  std::uint64_t max_body_size = 1 << 20;    // Content-Length or chunked total, else 413
  double header_timeout_s = 10;             // first byte of a request to end of its headers (and between body reads)
  // A retiring worker answers the next request of a keep-alive connection with
  // Connection: close, and closes one that stays silent only after this long: a
  // client may be sending its next request at the very moment retirement begins
  // (HAProxy's idle-close-on-response; nginx closes at once and loses them).
  double retire_idle_grace_s = 1;
  // http and tcp-echo
  double idle_timeout_s = 60;  // keep-alive wait between requests; tcp-echo: no data either way
  double send_timeout_s = 60;  // queued output making no progress this long closes the connection
  // udp-echo
  std::size_t max_datagram_size = 64 * 1024;  // receive buffer; larger datagrams are dropped
};

// http-parser refuses headers over its own HTTP_MAX_HEADER_SIZE (80 KiB) with a
// generic error; keeping ours below it means our limit, and our 431, always apply.
inline constexpr std::size_t kMaxHeaderSizeLimit = 64 * 1024;
inline constexpr std::size_t kMaxDatagramSizeLimit = 64 * 1024;
inline constexpr int kDefaultMaxConnections = 10000;

// Timer milliseconds for a configured duration; never 0, which timers read as "off".
inline std::uint64_t to_timer_ms(double seconds) {
  auto ms = static_cast<std::uint64_t>(seconds * 1000);
  return ms == 0 ? 1 : ms;
}

}  // namespace preforkd
