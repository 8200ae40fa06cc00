// The HTTP layer's [[listen]] keys: declared by every protocol built on the layer
// (the built-in http among them), read back into HttpLimits per listener.
#include <preforkd/http.hpp>

#include "common/limits.hpp"
#include "worker/http_limits.hpp"

namespace preforkd {

namespace http {

void declare_keys(Schema& schema) {
  const HttpLimits d;
  schema.integer("max_request_line", static_cast<std::int64_t>(d.max_request_line), 64, kMaxHeaderSizeLimit);
  // Above http-parser's own 80 KiB limit ours could never apply.
  schema.integer("max_header_size", static_cast<std::int64_t>(d.max_header_size), 256, kMaxHeaderSizeLimit);
  schema.integer("max_body_size", static_cast<std::int64_t>(d.max_body_size), 0, std::int64_t{1} << 40);
  schema.duration("header_timeout", d.header_timeout_s);
  schema.duration("retire_idle_grace", d.retire_idle_grace_s);
  schema.duration("idle_timeout", d.idle_timeout_s);
}

}  // namespace http

HttpLimits http_limits_of(const Listener& listener) {
  HttpLimits l;
  l.max_request_line = static_cast<std::size_t>(listener.integer("max_request_line"));
  l.max_header_size = static_cast<std::size_t>(listener.integer("max_header_size"));
  l.max_body_size = static_cast<std::uint64_t>(listener.integer("max_body_size"));
  l.header_timeout_s = listener.duration("header_timeout");
  l.retire_idle_grace_s = listener.duration("retire_idle_grace");
  l.idle_timeout_s = listener.duration("idle_timeout");
  return l;
}

}  // namespace preforkd
