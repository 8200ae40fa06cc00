// The HTTP layer's per-listener limits and timeouts, read once per listener from
// the keys http::declare_keys() declares. Defaults follow nginx
// (large_client_header_buffers 8k, client_max_body_size 1m, client_header_timeout
// 60s shortened to 10s, keepalive_timeout 75s shortened to 60s).
#pragma once

#include <cstddef>
#include <cstdint>

#include <preforkd/protocol.hpp>

namespace preforkd {

struct HttpLimits {
  std::size_t max_request_line = 8 * 1024;  // longest request target (URL), else 414
  std::size_t max_header_size = 16 * 1024;  // request line + headers, else 431
  std::uint64_t max_body_size = 1 << 20;    // Content-Length or chunked total, else 413
  double header_timeout_s = 10;             // first byte of a request to end of its headers (and between body reads)
  // A retiring worker answers the next request of a keep-alive connection with
  // Connection: close, and closes one that stays silent only after this long: a
  // client may be sending its next request at the very moment retirement begins
  // (HAProxy's idle-close-on-response; nginx closes at once and loses them).
  double retire_idle_grace_s = 1;
  double idle_timeout_s = 60;  // keep-alive wait between requests
};

// The limits of a listener whose protocol called http::declare_keys().
HttpLimits http_limits_of(const Listener& listener);

}  // namespace preforkd
