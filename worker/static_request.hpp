// What a static-file request asks beyond its path, as pure functions of header
// values: entity-tag lists (If-None-Match, If-Match, If-Range; RFC 9110 13.1),
// byte ranges (Range; RFC 9110 14) and content codings (Accept-Encoding with
// q-values; RFC 9110 12.5.3).
#pragma once

#include <cstdint>
#include <string_view>

namespace preforkd {

// "*" or a comma list of entity-tags ("x", W/"x") against `etag` (with its
// quotes). Weak comparison ignores W/; strong comparison (If-Match) needs both
// tags strong. A malformed list matches nothing from the bad element on.
bool etag_list_matches(std::string_view list, std::string_view etag, bool strong);

struct ByteRange {
  std::uint64_t first = 0;
  std::uint64_t last = 0;  // inclusive
  std::uint64_t length() const { return last - first + 1; }
};

enum class RangeAnswer {
  whole,          // no usable Range (absent, another unit, bad syntax): 200 with everything
  partial,        // one satisfiable range: 206 with it
  several,        // more than one range, some satisfiable: answered 200 with everything
  unsatisfiable,  // no range overlaps the representation: 416, Content-Range: bytes */size
};

// A Range header value for a representation of `size` bytes. *range is set for
// RangeAnswer::partial.
RangeAnswer parse_range(std::string_view value, std::uint64_t size, ByteRange* range);

// Whether Accept-Encoding allows gzip: "gzip" (or "x-gzip") listed with q > 0, or
// not listed while "*" is. An absent header allows any coding (RFC 9110 12.5.3),
// but a client that says nothing rarely expects a compressed answer, so "" is no,
// as in nginx.
bool accepts_gzip(std::string_view accept_encoding);

}  // namespace preforkd
