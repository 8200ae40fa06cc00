// Static HTTP at nginx's level, through the real binary and curl: byte ranges
// (206, 416, If-Range), ETag and its preconditions, directories (301, index),
// Host and absolute-form targets, gzip_static, error pages, Expires and
// Cache-Control, and large files sent with sendfile (whole, ranges, truncated
// while being sent). Each test checks a client-visible conformance point of
// RFC 9110 / RFC 9112, or nginx's behaviour where the RFC leaves a choice.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <random>
#include <string>

#include "tests/integration/harness.hpp"

using namespace itest;

namespace {

std::string random_bytes(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  std::mt19937 rng(seed);
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// nginx's entity-tag for a file: "<mtime hex>-<size hex>".
std::string nginx_etag(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "(no file)";
  char text[64];
  std::snprintf(text, sizeof text, "\"%" PRIx64 "-%" PRIx64 "\"", static_cast<std::uint64_t>(st.st_mtime),
                static_cast<std::uint64_t>(st.st_size));
  return text;
}

class Static : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new Preforkd({.workers = 2,
                            .web_config = "index = [\"index.htm\", \"index.html\"]\n"
                                          "gzip_static = true\n"
                                          "error_page = { 404 = \"/errors/404.html\" }\n"
                                          "expires = \"1h\"\n"
                                          "cache_control = \"public\"\n"});
    const std::string& root = server_->root();
    write_file(root + "/digits.txt", "0123456789abcdefghij");
    write_file(root + "/big.bin", random_bytes(3 * 1024 * 1024 + 7, 7));  // sendfile, not memory
    mkdir((root + "/docs").c_str(), 0755);
    write_file(root + "/docs/index.html", "<p>docs index.html</p>\n");
    mkdir((root + "/htm").c_str(), 0755);
    write_file(root + "/htm/index.htm", "<p>htm</p>\n");
    write_file(root + "/htm/index.html", "<p>second choice</p>\n");
    mkdir((root + "/empty").c_str(), 0755);
    mkdir((root + "/errors").c_str(), 0755);
    write_file(root + "/errors/404.html", "<h1>custom not found</h1>\n");
    write_file(root + "/page.css", std::string(2000, 'a') + "\n");
    std::string out;
    ASSERT_EQ(run_command("gzip -9 -k -n '" + root + "/page.css'", &out), 0) << out;
    std::string why;
    ASSERT_TRUE(server_->start(10s, &why)) << why;
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static int port() { return server_->http_port(); }
  static std::string url(const std::string& path) { return "http://127.0.0.1:" + std::to_string(port()) + path; }
  // curl's status line, headers (lower-cased names are not needed: the harness
  // parser compares case-insensitively) and body file of one request.
  static HttpResponse curl(const std::string& args, const std::string& path) {
    std::string body_file = server_->dir() + "/curl.body", head_file = server_->dir() + "/curl.head";
    std::string output;
    int rc = run_command("curl -sS --max-time 10 -o '" + body_file + "' -D '" + head_file + "' " + args + " '" +
                             url(path) + "'",
                         &output);
    HttpResponse r;
    EXPECT_EQ(rc, 0) << output;
    r.head = read_file(head_file);
    r.body = read_file(body_file);
    if (r.head.size() > 12) r.status = std::stoi(r.head.substr(9, 3));
    ::unlink(body_file.c_str());
    ::unlink(head_file.c_str());
    return r;
  }
  static Preforkd* server_;
};
Preforkd* Static::server_ = nullptr;

// --- Range (RFC 9110 14) ---------------------------------------------------------

TEST_F(Static, SingleRangeIs206WithContentRange) {
  HttpResponse r = curl("-r 3-7", "/digits.txt");
  EXPECT_EQ(r.status, 206) << r.head;
  EXPECT_EQ(r.header("Content-Range"), "bytes 3-7/20");
  EXPECT_EQ(r.header("Content-Length"), "5");
  EXPECT_EQ(r.body, "34567");
  EXPECT_EQ(curl("-r -4", "/digits.txt").body, "ghij") << "suffix range";
  EXPECT_EQ(curl("-r 15-", "/digits.txt").body, "fghij") << "open range";
  HttpResponse clamped = curl("-r 18-100", "/digits.txt");
  EXPECT_EQ(clamped.header("Content-Range"), "bytes 18-19/20");
  EXPECT_EQ(clamped.body, "ij");
  EXPECT_EQ(curl("", "/digits.txt").header("Accept-Ranges"), "bytes");
}

TEST_F(Static, SeveralRangesGetTheWhole200) {
  // Our documented choice: no multipart/byteranges; RFC 9110 allows ignoring Range.
  HttpResponse r = curl("-r 0-1,5-6", "/digits.txt");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "0123456789abcdefghij");
  EXPECT_EQ(r.header("Content-Range"), "");
}

TEST_F(Static, UnsatisfiableRangeIs416WithTheLength) {
  HttpResponse r = curl("-r 20-30", "/digits.txt");
  EXPECT_EQ(r.status, 416);
  EXPECT_EQ(r.header("Content-Range"), "bytes */20");
  auto raw = http_get(port(), "/digits.txt", "Range: bytes=999-\r\n");
  ASSERT_TRUE(raw);
  EXPECT_EQ(raw->status, 416);
  EXPECT_EQ(raw->header("Content-Range"), "bytes */20");
}

TEST_F(Static, InvalidOrForeignRangesAreIgnored) {
  for (const std::string range : {"bytes=7-3", "bytes=x-1", "lines=1-2"}) {
    auto r = http_get(port(), "/digits.txt", "Range: " + range + "\r\n");
    ASSERT_TRUE(r) << range;
    EXPECT_EQ(r->status, 200) << range;
    EXPECT_EQ(r->body.size(), 20u) << range;
  }
}

TEST_F(Static, RangeOnHeadIsIgnored) {
  int fd = connect_tcp("127.0.0.1", port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, "HEAD /digits.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-1\r\n\r\n"));
  std::string carry;
  auto r = read_response(fd, &carry, /*head_request=*/true);
  ::close(fd);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("Content-Length"), "20");
}

TEST_F(Static, IfRangeWithTheETagOrTheDate) {
  const std::string etag = nginx_etag(server_->root() + "/digits.txt");
  auto first = http_get(port(), "/digits.txt");
  ASSERT_TRUE(first);
  const std::string date = first->header("Last-Modified");
  auto by_tag = http_get(port(), "/digits.txt", "Range: bytes=0-1\r\nIf-Range: " + etag + "\r\n");
  ASSERT_TRUE(by_tag);
  EXPECT_EQ(by_tag->status, 206);
  EXPECT_EQ(by_tag->body, "01");
  auto by_date = http_get(port(), "/digits.txt", "Range: bytes=0-1\r\nIf-Range: " + date + "\r\n");
  ASSERT_TRUE(by_date);
  EXPECT_EQ(by_date->status, 206);
  // A different validator: the representation changed, so the whole of it.
  for (const std::string& stale : {std::string("\"0-0\""), "W/" + etag, std::string("Sun, 06 Nov 1994 08:49:37 GMT")}) {
    auto r = http_get(port(), "/digits.txt", "Range: bytes=0-1\r\nIf-Range: " + stale + "\r\n");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << stale;
    EXPECT_EQ(r->body.size(), 20u) << stale;
  }
}

// --- ETag and conditional requests (RFC 9110 8.8.3, 13) ---------------------------

TEST_F(Static, ETagIsNginxsMtimeSizeFormat) {
  HttpResponse r = curl("", "/digits.txt");
  EXPECT_EQ(r.header("ETag"), nginx_etag(server_->root() + "/digits.txt"));
  EXPECT_EQ(curl("", "/big.bin").header("ETag"), nginx_etag(server_->root() + "/big.bin"));
}

TEST_F(Static, IfNoneMatchGives304WithWeakComparisonListsAndStar) {
  const std::string etag = nginx_etag(server_->root() + "/digits.txt");
  for (const std::string& inm : {etag, "W/" + etag, "\"nope\", " + etag, std::string("*")}) {
    auto r = http_get(port(), "/digits.txt", "If-None-Match: " + inm + "\r\n");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 304) << inm;
    EXPECT_EQ(r->body, "");
    EXPECT_EQ(r->header("ETag"), etag) << "a 304 carries the validators";
    EXPECT_EQ(r->header("Cache-Control"), "max-age=3600, public");
  }
  auto miss = http_get(port(), "/digits.txt", "If-None-Match: \"nope\"\r\n");
  ASSERT_TRUE(miss);
  EXPECT_EQ(miss->status, 200);
  // curl's own ETag round trip.
  std::string etag_file = server_->dir() + "/etag.txt", out;
  ASSERT_EQ(run_command("curl -s -o /dev/null --etag-save '" + etag_file + "' " + url("/digits.txt"), &out), 0);
  ASSERT_EQ(run_command("curl -s -o /dev/null -w '%{http_code}' --etag-compare '" + etag_file + "' " +
                            url("/digits.txt"),
                        &out),
            0);
  EXPECT_EQ(out, "304");
}

TEST_F(Static, IfNoneMatchTakesPrecedenceOverIfModifiedSince) {
  auto first = http_get(port(), "/digits.txt");
  ASSERT_TRUE(first);
  // RFC 9110 13.1.3: with If-None-Match present, If-Modified-Since is ignored.
  auto r = http_get(port(), "/digits.txt",
                    "If-None-Match: \"other\"\r\nIf-Modified-Since: " + first->header("Last-Modified") + "\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(Static, IfMatchFailureIs412) {
  auto r = http_get(port(), "/digits.txt", "If-Match: \"other\"\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 412);
  auto ok = http_get(port(), "/digits.txt", "If-Match: " + nginx_etag(server_->root() + "/digits.txt") + "\r\n");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

// --- Directories and index files --------------------------------------------------

TEST_F(Static, DirectoryWithoutSlashIs301ToTheSlash) {
  auto r = http_get(port(), "/docs");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 301);
  EXPECT_EQ(r->header("Location"), "/docs/");
  auto q = http_get(port(), "//docs?x=1");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->status, 301);
  EXPECT_EQ(q->header("Location"), "/docs/?x=1") << "normalised (never \"//host\"), with the query";
  HttpResponse followed = curl("-L", "/docs");
  EXPECT_EQ(followed.body, "<p>docs index.html</p>\n");
}

TEST_F(Static, IndexFilesAreTriedInOrder) {
  EXPECT_EQ(curl("", "/htm/").body, "<p>htm</p>\n") << "the first name of `index` that exists";
  EXPECT_EQ(curl("", "/docs/").body, "<p>docs index.html</p>\n") << "the second when the first is missing";
  EXPECT_EQ(curl("", "/empty/").status, 404);
}

// --- Host and request targets (RFC 9112 3.2) ---------------------------------------

TEST_F(Static, Http11WithoutHostIs400) {
  std::string out;
  run_command("curl -s -o /dev/null -w '%{http_code}' -H 'Host:' " + url("/digits.txt"), &out);
  EXPECT_EQ(out, "400");
  int fd = connect_tcp("127.0.0.1", port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, "GET /digits.txt HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"));
  std::string carry;
  auto two = read_response(fd, &carry);
  ::close(fd);
  ASSERT_TRUE(two);
  EXPECT_EQ(two->status, 400) << "two Host lines";
  // HTTP/1.0 has no Host requirement.
  fd = connect_tcp("127.0.0.1", port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, "GET /digits.txt HTTP/1.0\r\n\r\n"));
  auto old = read_response(fd, &carry);
  ::close(fd);
  ASSERT_TRUE(old);
  EXPECT_EQ(old->status, 200);
}

TEST_F(Static, AbsoluteFormTargetsAreAccepted) {
  // curl through a "proxy" sends the absolute form: GET http://example.invalid/... HTTP/1.1
  std::string out;
  ASSERT_EQ(run_command("curl -s --max-time 10 -x 127.0.0.1:" + std::to_string(port()) +
                            " http://example.invalid/digits.txt?q=1",
                        &out),
            0);
  EXPECT_EQ(out, "0123456789abcdefghij");
  int fd = connect_tcp("127.0.0.1", port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, "GET http://h HTTP/1.1\r\nHost: h\r\n\r\n"));
  std::string carry;
  auto root = read_response(fd, &carry);
  ::close(fd);
  ASSERT_TRUE(root);
  EXPECT_EQ(root->status, 200) << "no path: the root";
  EXPECT_EQ(root->body, "<html><body>index</body></html>\n");
}

TEST_F(Static, EveryFormOfAPathIsTheSameFile) {
  for (const std::string path : {"/digits.txt", "//digits.txt", "/%64igits.txt", "/./digits.txt", "/docs/../digits.txt"}) {
    auto r = http_get(port(), path);
    ASSERT_TRUE(r) << path;
    if (path.find("..") != std::string::npos) {
      EXPECT_EQ(r->status, 403) << path << ": \"..\" stays refused";
      continue;
    }
    EXPECT_EQ(r->status, 200) << path;
    EXPECT_EQ(r->body, "0123456789abcdefghij") << path;
  }
}

// --- gzip_static -----------------------------------------------------------------

TEST_F(Static, PrecompressedSiblingForClientsThatTakeGzip) {
  const std::string plain = read_file(server_->root() + "/page.css");
  HttpResponse gz = curl("--compressed", "/page.css");
  EXPECT_EQ(gz.status, 200);
  EXPECT_EQ(gz.header("Content-Encoding"), "gzip");
  EXPECT_EQ(gz.header("Vary"), "Accept-Encoding");
  EXPECT_EQ(gz.header("Content-Type"), "text/css; charset=utf-8") << "the type of the plain file";
  EXPECT_EQ(gz.header("ETag"), nginx_etag(server_->root() + "/page.css.gz"));
  EXPECT_EQ(gz.body, plain) << "curl decoded the .gz sibling";
  HttpResponse raw = curl("-H 'Accept-Encoding: gzip'", "/page.css");
  EXPECT_EQ(raw.body, read_file(server_->root() + "/page.css.gz")) << "the sibling's bytes as they are";

  HttpResponse none = curl("", "/page.css");
  EXPECT_EQ(none.header("Content-Encoding"), "");
  EXPECT_EQ(none.header("Vary"), "Accept-Encoding") << "a cache must know the answer varies";
  EXPECT_EQ(none.body, plain);
  EXPECT_EQ(curl("-H 'Accept-Encoding: gzip;q=0, br'", "/page.css").body, plain);
  // A range is of the plain representation, never of the sibling.
  HttpResponse range = curl("-H 'Accept-Encoding: gzip' -r 0-9", "/page.css");
  EXPECT_EQ(range.status, 206);
  EXPECT_EQ(range.header("Content-Encoding"), "");
  EXPECT_EQ(range.body, "aaaaaaaaaa");
}

// --- error_page, Expires, Cache-Control -------------------------------------------

TEST_F(Static, CustomErrorPageKeepsTheStatus) {
  HttpResponse r = curl("", "/no/such/file");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, "<h1>custom not found</h1>\n");
  EXPECT_EQ(r.header("Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(curl("-r 50-", "/digits.txt").body.find("custom"), std::string::npos) << "416 has no page configured";
}

TEST_F(Static, ExpiresAndCacheControlOnFileAnswers) {
  HttpResponse r = curl("", "/digits.txt");
  EXPECT_EQ(r.header("Cache-Control"), "max-age=3600, public");
  std::string expires = r.header("Expires");
  ASSERT_FALSE(expires.empty());
  EXPECT_TRUE(expires.ends_with(" GMT")) << expires;
  EXPECT_EQ(curl("-r 0-0", "/digits.txt").header("Cache-Control"), "max-age=3600, public");
  EXPECT_EQ(curl("", "/big.bin").header("Cache-Control"), "max-age=3600, public");
}

// --- Large files: sendfile ---------------------------------------------------------

TEST_F(Static, LargeFilesWholeAndRangesByteForByte) {
  const std::string big = read_file(server_->root() + "/big.bin");
  HttpResponse whole = curl("", "/big.bin");
  EXPECT_EQ(whole.status, 200);
  EXPECT_TRUE(whole.body == big) << "size " << whole.body.size();
  HttpResponse part = curl("-r 1000000-2999999", "/big.bin");
  EXPECT_EQ(part.status, 206);
  EXPECT_EQ(part.header("Content-Range"), "bytes 1000000-2999999/" + std::to_string(big.size()));
  EXPECT_TRUE(part.body == big.substr(1000000, 2000000));
  // Several keep-alive GETs of the file on one connection, each whole.
  std::string out;
  ASSERT_EQ(run_command("curl -s --max-time 20 -w '%{size_download} %{num_connects} ' -o /dev/null " +
                            url("/big.bin") + " -o /dev/null " + url("/big.bin") + " -o /dev/null " + url("/big.bin"),
                        &out),
            0);
  std::string n = std::to_string(big.size());
  EXPECT_EQ(out, n + " 1 " + n + " 0 " + n + " 0 ") << "three whole files, one connection";
}

TEST_F(Static, AFileTruncatedWhileBeingSentClosesTheConnection) {
  const std::string path = server_->root() + "/shrinks.bin";
  const std::size_t size = 24 * 1024 * 1024;
  write_file(path, random_bytes(size, 11));
  // A small receive buffer set before connecting (so the window is small from the
  // start): the server fills its socket and waits for POLLOUT mid-file, with little
  // of the file already in the kernel's buffers.
  int fd = connect_tcp("127.0.0.1", port(), 5s, 4096);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, "GET /shrinks.bin HTTP/1.1\r\nHost: t\r\n\r\n"));
  // Take a little, so the server is mid-file with a full socket, then cut the file.
  char buf[4096];
  ASSERT_GT(::recv(fd, buf, sizeof buf, 0), 0);
  ::usleep(300 * 1000);
  ASSERT_EQ(::truncate(path.c_str(), 1024 * 1024), 0);
  auto rest = wait_closed(fd, 15s);
  ::close(fd);
  ASSERT_TRUE(rest) << "the connection must close, not hang";
  EXPECT_LT(rest->size() + sizeof buf, size) << "fewer bytes than promised: the client sees a truncated response";
  // And the server serves on.
  auto after = http_get(port(), "/digits.txt");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 200);
  ::unlink(path.c_str());
}

}  // namespace
