// scan_request, the HTTP fast path: what it takes, what it reads from it, and
// everything it must leave to http_parser. (That http_parser reads what it takes
// the same way is the differential fuzz target's job: tests/fuzz/http_scan_entry.cpp,
// replayed from its corpus by fuzz_corpus_tests.)
#include <gtest/gtest.h>

#include <http_parser.h>

#include <string>
#include <string_view>

#include "worker/http_request_scan.hpp"

namespace preforkd {
namespace {

constexpr std::size_t kTarget = 8192, kHead = 16384;

std::string_view at(std::string_view bytes, ScannedRequest::Span s) { return bytes.substr(s.at, s.length); }

bool takes(std::string_view bytes, std::size_t max_target = kTarget, std::size_t max_head = kHead) {
  ScannedRequest r;
  return scan_request(bytes, max_target, max_head, r);
}

TEST(HttpRequestScan, ReadsWrksRequest) {
  std::string_view req = "GET /small.txt HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
  ScannedRequest r;
  ASSERT_TRUE(scan_request(req, kTarget, kHead, r));
  EXPECT_EQ(r.method, unsigned{HTTP_GET});
  EXPECT_EQ(r.http_minor, 1);
  EXPECT_TRUE(r.keep_alive);
  EXPECT_EQ(at(req, r.target), "/small.txt");
  EXPECT_EQ(r.path_length, r.target.length) << "no query: the path is the whole target";
  ASSERT_EQ(r.field_count, 1u);
  EXPECT_EQ(at(req, r.fields[0].name), "Host");
  EXPECT_EQ(at(req, r.fields[0].value), "127.0.0.1:8080");
  EXPECT_EQ(r.length, req.size());
}

TEST(HttpRequestScan, ReadsOneRequestOfAPipelineAndTrimsValues) {
  std::string first = "HEAD /a/b?x=%20&y=/:@ HTTP/1.0\r\nX-A:\t v\r\nX-Empty:\r\nUser-Agent: caf\xc3\xa9\r\n\r\n";
  std::string bytes = first + "GET /next HTTP/1.1\r\nHost: h\r\n\r\n";
  ScannedRequest r;
  ASSERT_TRUE(scan_request(bytes, kTarget, kHead, r));
  EXPECT_EQ(r.method, unsigned{HTTP_HEAD});
  EXPECT_EQ(r.http_minor, 0);
  EXPECT_EQ(at(bytes, r.target), "/a/b?x=%20&y=/:@");
  EXPECT_EQ(r.path_length, 4u) << "the path ends at the query's '?'";
  ASSERT_EQ(r.field_count, 3u);
  EXPECT_EQ(at(bytes, r.fields[0].value), "v");
  EXPECT_EQ(at(bytes, r.fields[1].name), "X-Empty");
  EXPECT_EQ(at(bytes, r.fields[1].value), "");
  EXPECT_EQ(at(bytes, r.fields[2].value), "caf\xc3\xa9");
  EXPECT_EQ(r.length, first.size()) << "only the first request";
}

TEST(HttpRequestScan, KeepAliveAsHttpParserDecidesIt) {
  struct Case {
    std::string_view version, connection;
    bool keep_alive;
  };
  for (Case c : {Case{"1.1", "", true}, Case{"1.1", "close", false}, Case{"1.1", "Close", false},
                 Case{"1.1", "keep-alive", true}, Case{"1.0", "", false}, Case{"1.0", "Keep-Alive", true},
                 Case{"1.0", "close", false}}) {
    std::string req = "GET / HTTP/" + std::string(c.version) + "\r\nHost: h\r\n";
    if (!c.connection.empty()) req += "Connection: " + std::string(c.connection) + "\r\n";
    req += "\r\n";
    ScannedRequest r;
    ASSERT_TRUE(scan_request(req, kTarget, kHead, r)) << req;
    EXPECT_EQ(r.keep_alive, c.keep_alive) << req;
  }
}

TEST(HttpRequestScan, LeavesEverythingElseToHttpParser) {
  const std::string_view host = "Host: h\r\n";
  auto with = [&](std::string_view line) { return "GET / HTTP/1.1\r\n" + std::string(host) + std::string(line) + "\r\n"; };
  struct Case {
    const char* why;
    std::string bytes;
  };
  const Case cases[] = {
      {"not whole yet", "GET /small.txt HTTP/1.1\r\nHost: h\r\n"},
      {"not whole yet: half the blank line", "GET / HTTP/1.1\r\nHost: h\r\n\r"},
      {"a request line only", "GET / HTTP/1.1\r\n"},
      {"a method with a body", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"},
      {"another method", "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"},
      {"lowercase method", "get / HTTP/1.1\r\nHost: h\r\n\r\n"},
      {"leading CRLF between requests", "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"},
      {"absolute-form", "GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n"},
      {"a fragment", "GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n"},
      {"a quote in the target", "GET /\" HTTP/1.1\r\nHost: h\r\n\r\n"},
      {"obs-text in the target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n"},
      {"two spaces", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n"},
      {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: h\r\n\r\n"},
      {"HTTP/1.2", "GET / HTTP/1.2\r\nHost: h\r\n\r\n"},
      {"HTTP/0.9 style", "GET /\r\n\r\n"},
      {"bare LF after the request line", "GET / HTTP/1.1\nHost: h\r\n\r\n"},
      {"bare LF after a header", "GET / HTTP/1.1\r\nHost: h\n\r\n"},
      {"bare LF as the blank line", "GET / HTTP/1.1\r\nHost: h\r\n\n"},
      {"Content-Length", with("Content-Length: 0\r\n")},
      {"content-length in lowercase", with("content-length: 5\r\n")},
      {"Transfer-Encoding", with("Transfer-Encoding: chunked\r\n")},
      {"a name that begins with Transfer-Encoding", with("Transfer-EncodingX: chunked\r\n")},
      {"Upgrade", with("Upgrade: websocket\r\nConnection: Upgrade\r\n")},
      {"Connection: upgrade", with("Connection: upgrade\r\n")},
      {"a Connection list", with("Connection: keep-alive, TE\r\n")},
      {"two Connection headers", with("Connection: close\r\nConnection: close\r\n")},
      {"Proxy-Connection", with("Proxy-Connection: close\r\n")},
      {"obs-fold", with("X-A: a\r\n b\r\n")},
      {"space before the colon", with("X-A : a\r\n")},
      {"no colon", with("X-A a\r\n")},
      {"an empty name", with(": a\r\n")},
      {"trailing whitespace in a value", with("X-A: a \r\n")},
      {"a control character in a value", with(std::string("X-A: a\x01z\r\n"))},
      {"DEL in a value", with("X-A: a\x7fz\r\n")},
      {"a NUL in a value", with(std::string("X-A: a\0z\r\n", 10))},
      {"a bare CR in a value", with("X-A: a\rz\r\n")},
  };
  for (const Case& c : cases) EXPECT_FALSE(takes(c.bytes)) << c.why;
  std::string many = "GET / HTTP/1.1\r\n";
  for (std::size_t i = 0; i <= ScannedRequest::kMaxFields; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  EXPECT_FALSE(takes(many + "\r\n")) << "more than kMaxFields headers";
  EXPECT_FALSE(takes("")) << "nothing";
}

// Values are skipped eight bytes at a time: a control byte or DEL must stop the
// scan at every position within and across those words, and whatever else a
// value may hold (HTAB, SP, obs-text, every VCHAR) must not.
TEST(HttpRequestScan, EveryByteOfALongValueIsChecked) {
  auto request = [](const std::string& value) { return "GET / HTTP/1.1\r\nHost: h\r\nX-V: " + value + "\r\n\r\n"; };
  const std::string plain(24, 'v');
  ASSERT_TRUE(takes(request(plain)));
  for (std::size_t i = 0; i < plain.size(); ++i) {
    for (unsigned char bad : {0x00, 0x01, 0x0a, 0x0d, 0x1f, 0x7f}) {
      std::string v = plain;
      v[i] = static_cast<char>(bad);
      EXPECT_FALSE(takes(request(v))) << "byte " << int(bad) << " at " << i;
    }
    for (unsigned char good : {0x09, 0x20, 0x21, 0x7e, 0x80, 0xff}) {
      // Whitespace at either end is OWS, not value (and trailing OWS is declined).
      if ((i == 0 || i == plain.size() - 1) && (good == 0x09 || good == 0x20)) continue;
      std::string v = plain;
      v[i] = static_cast<char>(good);
      ScannedRequest r;
      std::string req = request(v);
      ASSERT_TRUE(scan_request(req, kTarget, kHead, r)) << "byte " << int(good) << " at " << i;
      EXPECT_EQ(at(req, r.fields[1].value), v);
    }
  }
}

TEST(HttpRequestScan, LimitsAreInclusiveAndOverThemItDeclines) {
  std::string req = "GET /0123456789 HTTP/1.1\r\nHost: h\r\n\r\n";  // target of 11 bytes
  EXPECT_TRUE(takes(req, 11, req.size()));
  EXPECT_FALSE(takes(req, 10, req.size())) << "target over max_target: http_parser's path answers 414";
  EXPECT_FALSE(takes(req, 11, req.size() - 1)) << "head over max_head: http_parser's path answers 431";
  // A limit does not cut off a second request that follows.
  EXPECT_TRUE(takes(req + "GET / HTTP/1.1\r\n", 11, req.size()));
}

}  // namespace
}  // namespace preforkd
