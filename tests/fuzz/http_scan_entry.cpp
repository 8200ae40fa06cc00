// The HTTP fast path against http_parser, differentially: whenever scan_request
// takes the bytes, http_parser, given the same bytes, must read one whole request
// of exactly that length, with the same method, version, target, header names and
// values (in order) and keep-alive, no body, no upgrade. What the scan declines is
// http_parser's alone, so nothing is checked then; the input's first byte picks
// the limits, so the fuzzer also explores the edges of max_target and max_head.
#include <http_parser.h>

#include <climits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/fuzz/fake_transport.hpp"
#include "tests/fuzz/fuzz_entries.hpp"
#include "worker/http_request_scan.hpp"

namespace preforkd::fuzz {
namespace {

// What http_parser's callbacks report for one message.
struct Parsed {
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  bool last_was_value = false;
  bool body = false;
  int messages = 0;
};

Parsed& of(http_parser* p) { return *static_cast<Parsed*>(p->data); }

const http_parser_settings kSettings = [] {
  http_parser_settings s{};
  s.on_url = [](http_parser* p, const char* at, std::size_t n) {
    of(p).url.append(at, n);
    return 0;
  };
  s.on_header_field = [](http_parser* p, const char* at, std::size_t n) {
    Parsed& r = of(p);
    if (r.headers.empty() || r.last_was_value) r.headers.emplace_back();
    r.headers.back().first.append(at, n);
    r.last_was_value = false;
    return 0;
  };
  s.on_header_value = [](http_parser* p, const char* at, std::size_t n) {
    Parsed& r = of(p);
    if (r.headers.empty()) r.headers.emplace_back();
    r.headers.back().second.append(at, n);
    r.last_was_value = true;
    return 0;
  };
  s.on_body = [](http_parser* p, const char*, std::size_t) {
    of(p).body = true;
    return 0;
  };
  s.on_message_complete = [](http_parser* p) {
    ++of(p).messages;
    http_parser_pause(p, 1);  // as the session does: stop at the end of the request
    return 0;
  };
  return s;
}();

void require(bool ok, const std::string& what, std::string_view input) {
  if (!ok) throw FuzzFailure("scan_request and http_parser disagree: " + what + " on " + std::string(input));
}

}  // namespace

void http_scan_one_input(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return;
  // Limits from the first byte: 0-127 the defaults' order of size, otherwise small.
  std::size_t max_target = data[0] < 128 ? 8192 : data[0] % 64;
  std::size_t max_head = data[0] < 128 ? 16384 : 8 + data[0] % 128;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);

  ScannedRequest scanned;
  if (!scan_request(input, max_target, max_head, scanned)) return;

  require(scanned.length <= input.size() && scanned.length <= max_head, "length beyond the input or max_head", input);
  require(scanned.target.length <= max_target, "target over max_target", input);
  auto span = [&](ScannedRequest::Span s) {
    require(s.at + s.length <= scanned.length, "a span outside the head", input);
    return std::string(input.substr(s.at, s.length));
  };

  Parsed parsed;
  http_parser parser;
  http_parser_init(&parser, HTTP_REQUEST);
  parser.data = &parsed;
  std::size_t used = http_parser_execute(&parser, &kSettings, input.data(), input.size());
  require(HTTP_PARSER_ERRNO(&parser) == HPE_PAUSED && parsed.messages == 1,
          std::string("http_parser did not end a request: ") + http_errno_name(HTTP_PARSER_ERRNO(&parser)), input);
  require(used == scanned.length, "request length " + std::to_string(scanned.length) + " vs " + std::to_string(used),
          input);
  require(parser.method == scanned.method, "method", input);
  require(parser.http_major == 1 && parser.http_minor == scanned.http_minor, "version", input);
  require(parsed.url == span(scanned.target), "target", input);
  // The session's path(): the target up to its query or fragment.
  require(scanned.path_length == parsed.url.substr(0, parsed.url.find_first_of("?#")).size(), "path length", input);
  require(parsed.headers.size() == scanned.field_count, "header count", input);
  for (std::size_t i = 0; i < scanned.field_count; ++i) {
    require(parsed.headers[i].first == span(scanned.fields[i].name), "header name " + std::to_string(i), input);
    require(parsed.headers[i].second == span(scanned.fields[i].value), "header value " + std::to_string(i), input);
  }
  require((http_should_keep_alive(&parser) != 0) == scanned.keep_alive, "keep-alive", input);
  require(!parsed.body && (parser.flags & F_CHUNKED) == 0 && parser.upgrade == 0, "a body or an upgrade", input);
  require(parser.content_length == 0 || parser.content_length == ULLONG_MAX, "a Content-Length", input);
}

}  // namespace preforkd::fuzz
