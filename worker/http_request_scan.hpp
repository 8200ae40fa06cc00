// A fast path in front of http_parser for the request a static server sees most:
// GET or HEAD, an origin-form target, HTTP/1.0 or 1.1, no body, every byte of its
// head already received. http_parser 2.9 goes byte by byte through a state machine
// with a callback per piece (~2,100 instructions for wrk's request, over half of
// what a keep-alive request costs preforkd in user space); this scan finds the same
// fields in a few hundred.
//
// It only takes what it is sure of and declines everything else, leaving the bytes
// untouched for http_parser, which stays the parser of record: a method other than
// GET/HEAD, any Content-Length or Upgrade, a name that begins with
// "Transfer-Encoding" (http_parser's reading of it), Connection with
// anything but one "close" or "keep-alive", obsolete line folding, bare LF, a
// character outside the conservative sets below, a head not yet whole, one over
// the limits, or more than kMaxFields header lines. Whatever it takes, http_parser
// parses to the same method, target, version, header spans and keep-alive; the
// differential fuzz target (tests/fuzz/http_scan_entry.cpp) checks exactly that.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace preforkd {

struct ScannedRequest {
  static constexpr std::size_t kMaxFields = 32;
  // Offsets into the scanned bytes, so a caller can copy the head once and keep them.
  // No initialisers: a caller declares one per request on the stack, and zeroing
  // kMaxFields fields cost ~65 instructions a request (callgrind); the scan sets
  // every span it reports.
  struct Span {
    std::uint32_t at, length;
  };
  struct Field {
    Span name, value;  // the value without the whitespace around it
  };
  unsigned method = 0;  // enum http_method: HTTP_GET or HTTP_HEAD
  int http_minor = 1;   // the major version is 1
  bool keep_alive = true;  // as http_should_keep_alive() would say
  Span target;
  std::uint32_t path_length = 0;  // of the target, up to its '?' (the target has no '#')
  Field fields[kMaxFields];
  std::size_t field_count = 0;
  std::size_t length = 0;  // bytes of the head, its blank line included
};

// true: `data` begins with a whole request of the kind above, described in `out`,
// whose target is at most max_target bytes and whose head is at most max_head.
// false: leave `data` to http_parser (`out` is then unspecified).
bool scan_request(std::string_view data, std::size_t max_target, std::size_t max_head, ScannedRequest& out);

}  // namespace preforkd
