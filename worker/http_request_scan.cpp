// The character classes are narrower than the RFCs allow on purpose: a byte the
// fast path does not know it agrees with http_parser on sends the request to
// http_parser, which costs a little time and never a different answer.
#include "worker/http_request_scan.hpp"

#include <http_parser.h>

#include <array>
#include <bit>
#include <cstring>

#include "worker/ascii.hpp"

namespace preforkd {
namespace {

using Table = std::array<bool, 256>;

constexpr Table table_of(const char* extra) {
  Table t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (const char* p = extra; *p != '\0'; ++p) t[static_cast<unsigned char>(*p)] = true;
  return t;
}

// RFC 9110 5.6.2 tchar: a header name.
constexpr Table kTokenChar = table_of("!#$%&'*+-.^_`|~");
// RFC 3986 pchar plus '/' and '?': an origin-form path and query. No '#' (clients
// do not send fragments, and http_parser has its own view of them), no '"', '<',
// '>', '\\', '^', '`', '{', '|', '}' and no obs-text.
constexpr Table kTargetChar = table_of("-._~!$&'()*+,;=:@%/?");
// The same without '?': the path, up to its query.
constexpr Table kPathChar = table_of("-._~!$&'()*+,;=:@%/");
// A header value: VCHAR, obs-text, SP and HTAB (RFC 9110 5.5).
constexpr Table kValueChar = [] {
  Table t{};
  t['\t'] = true;
  for (int c = 0x20; c < 0x100; ++c) t[c] = c != 0x7f;
  return t;
}();

// Past the value characters from p: eight bytes at a time. A header value is most
// of a request's bytes (User-Agent, Cookie, Accept), and one table lookup per byte
// cost ~7 instructions (callgrind). The word test flags the bytes below 0x20 and
// DEL (0x7f); its lowest flag is exact (a borrow only runs upwards from a flagged
// byte), which is all we read of it: that byte ends the value, unless it is HTAB.
const char* skip_value(const char* p, const char* end) {
  static_assert(std::endian::native == std::endian::little, "the word's first byte must be its lowest");
  constexpr std::uint64_t kOnes = 0x0101010101010101ULL, kHighs = 0x8080808080808080ULL;
  while (end - p >= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    std::uint64_t del = w ^ (0x7f * kOnes);
    std::uint64_t flags = (((w - 0x20 * kOnes) & ~w) | ((del - kOnes) & ~del)) & kHighs;
    if (flags == 0) {
      p += 8;
      continue;
    }
    p += std::countr_zero(flags) / 8;
    if (*p != '\t') return p;
    ++p;
  }
  while (p != end && kValueChar[static_cast<unsigned char>(*p)]) ++p;
  return p;
}

}  // namespace

bool scan_request(std::string_view data, std::size_t max_target, std::size_t max_head, ScannedRequest& out) {
  const char* const begin = data.data();
  const char* const end = begin + (data.size() < max_head ? data.size() : max_head);
  const char* p = begin;
  auto offset = [begin](const char* at) { return static_cast<std::uint32_t>(at - begin); };
  auto u = [](char c) { return static_cast<unsigned char>(c); };

  // "GET " or "HEAD ": the methods without a body.
  if (end - p >= 4 && std::memcmp(p, "GET ", 4) == 0) {
    out.method = HTTP_GET;
    p += 4;
  } else if (end - p >= 5 && std::memcmp(p, "HEAD ", 5) == 0) {
    out.method = HTTP_HEAD;
    p += 5;
  } else {
    return false;
  }

  // origin-form: "/" and pchars, up to one SP.
  const char* target = p;
  if (p == end || *p != '/') return false;
  while (p != end && kPathChar[u(*p)]) ++p;
  out.path_length = static_cast<std::uint32_t>(p - target);
  while (p != end && kTargetChar[u(*p)]) ++p;
  if (static_cast<std::size_t>(p - target) > max_target) return false;
  out.target = {offset(target), offset(p) - offset(target)};

  // " HTTP/1.0\r\n" or " HTTP/1.1\r\n".
  if (end - p < 11 || std::memcmp(p, " HTTP/1.", 8) != 0 || (p[8] != '0' && p[8] != '1') || p[9] != '\r' ||
      p[10] != '\n')
    return false;
  out.http_minor = p[8] - '0';
  p += 11;

  bool close = false, keep_alive = false, connection_seen = false;
  out.field_count = 0;
  for (;;) {
    if (end - p < 2) return false;  // not whole yet (or over max_head)
    if (p[0] == '\r' && p[1] == '\n') {
      p += 2;
      break;
    }
    if (out.field_count == ScannedRequest::kMaxFields) return false;
    // name ":" OWS value OWS CRLF; a line that starts with whitespace (obs-fold) or
    // has any before the colon is not a token and ends the scan here.
    const char* name = p;
    while (p != end && kTokenChar[u(*p)]) ++p;
    if (p == name || p == end || *p != ':') return false;
    std::string_view field(name, static_cast<std::size_t>(p - name));
    ++p;
    while (p != end && (*p == ' ' || *p == '\t')) ++p;
    const char* value = p;
    p = skip_value(p, end);
    if (end - p < 2 || p[0] != '\r' || p[1] != '\n') return false;
    // Trailing whitespace: OWS that http_parser keeps in the value (2.9); not ours to trim.
    if (p != value && (p[-1] == ' ' || p[-1] == '\t')) return false;
    std::string_view text(value, static_cast<std::size_t>(p - value));

    // http_parser 2.9 sets its Transfer-Encoding flag as soon as a name begins
    // with "transfer-encoding" ("Transfer-EncodingX" too) and then refuses a request
    // that is not chunked; such a name is its to judge (found by the http_scan fuzzer).
    if (field.size() >= 17 && iequals(field.substr(0, 17), "transfer-encoding")) return false;
    // The headers that change framing or the connection; http_parser treats
    // Proxy-Connection as Connection.
    switch (field.size()) {
      case 7:
        if (iequals(field, "upgrade")) return false;
        break;
      case 10:
        if (iequals(field, "connection")) {
          if (connection_seen) return false;
          connection_seen = true;
          if (iequals(text, "close")) {
            close = true;
          } else if (iequals(text, "keep-alive")) {
            keep_alive = true;
          } else {
            return false;
          }
        }
        break;
      case 14:
        if (iequals(field, "content-length")) return false;
        break;
      case 16:
        if (iequals(field, "proxy-connection")) return false;
        break;
      default:
        break;
    }
    out.fields[out.field_count++] = {{offset(name), static_cast<std::uint32_t>(field.size())},
                                     {offset(value), static_cast<std::uint32_t>(text.size())}};
    p += 2;
  }
  out.length = static_cast<std::size_t>(p - begin);
  // http_should_keep_alive(): 1.1 unless "close", 1.0 only with "keep-alive".
  out.keep_alive = out.http_minor >= 1 ? !close : keep_alive;
  return true;
}

}  // namespace preforkd
