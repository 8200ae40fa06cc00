// The http handler through the real binary: a real client (curl) and raw sockets
// for what curl would hide (pipelining, garbage, HTTP/1.0).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <memory>
#include <random>

#include "tests/integration/harness.hpp"

using namespace itest;

namespace {

class Http : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new Preforkd({.workers = 2});
    // A file bigger than one streaming chunk, with bytes that catch reordering.
    std::string big(1'000'003, '\0');
    std::mt19937 rng(42);
    for (auto& c : big) c = static_cast<char>(rng());
    write_file(server_->root() + "/big.bin", big);
    mkdir((server_->root() + "/docs").c_str(), 0755);
    write_file(server_->root() + "/docs/index.html", "<p>docs</p>\n");
    write_file(server_->root() + "/style.css", "body{}\n");
    write_file(server_->dir() + "/secret.txt", "outside the root\n");
    symlink((server_->dir() + "/secret.txt").c_str(), (server_->root() + "/escape.txt").c_str());
    symlink((server_->root() + "/hello.txt").c_str(), (server_->root() + "/inside.txt").c_str());
    std::string why;
    ASSERT_TRUE(server_->start(10s, &why)) << why;
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static int port() { return server_->http_port(); }
  static std::string url(const std::string& path) {
    return "http://127.0.0.1:" + std::to_string(port()) + path;
  }
  static Preforkd* server_;
};
Preforkd* Http::server_ = nullptr;

TEST_F(Http, CurlFetchesAStaticFileByteForByte) {
  for (const std::string name : {"hello.txt", "big.bin"}) {
    std::string out = server_->dir() + "/" + name + ".download";
    std::string output;
    ASSERT_EQ(run_command("curl -sS -o '" + out + "' -w '%{http_code} %{content_type}' " + url("/" + name), &output), 0)
        << output;
    EXPECT_EQ(output.substr(0, 3), "200") << output;
    EXPECT_EQ(read_file(out), read_file(server_->root() + "/" + name)) << name;
  }
}

TEST_F(Http, ContentTypeComesFromTheExtensionAndSlashServesIndex) {
  auto css = http_get(port(), "/style.css");
  ASSERT_TRUE(css);
  EXPECT_EQ(css->header("Content-Type"), "text/css; charset=utf-8");
  auto index = http_get(port(), "/");
  ASSERT_TRUE(index);
  EXPECT_EQ(index->status, 200);
  EXPECT_EQ(index->header("Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(index->body, "<html><body>index</body></html>\n");
  auto docs = http_get(port(), "/docs/");
  ASSERT_TRUE(docs);
  EXPECT_EQ(docs->body, "<p>docs</p>\n");
}

TEST_F(Http, HeadSendsHeadersOnly) {
  int fd = connect_tcp("127.0.0.1", port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, "HEAD /big.bin HTTP/1.1\r\nHost: t\r\n\r\nGET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n"));
  std::string carry;
  auto head = read_response(fd, &carry, /*head_request=*/true);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->header("Content-Length"), "1000003");
  // The very next bytes on the connection are the second response: no body was sent.
  auto next = read_response(fd, &carry);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->body, "hello from preforkd\n");
  close(fd);
}

TEST_F(Http, IfModifiedSinceGives304) {
  auto first = http_get(port(), "/hello.txt");
  ASSERT_TRUE(first);
  std::string last_modified = first->header("Last-Modified");
  ASSERT_FALSE(last_modified.empty());
  auto again = http_get(port(), "/hello.txt", "If-Modified-Since: " + last_modified + "\r\n");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 304);
  EXPECT_EQ(again->body, "");
  auto older = http_get(port(), "/hello.txt", "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n");
  ASSERT_TRUE(older);
  EXPECT_EQ(older->status, 200);
  auto garbage_date = http_get(port(), "/hello.txt", "If-Modified-Since: yesterday\r\n");
  ASSERT_TRUE(garbage_date);
  EXPECT_EQ(garbage_date->status, 200);
  // curl's own conditional request agrees.
  std::string output;
  run_command("curl -s -o /dev/null -w '%{http_code}' -z '" + last_modified + "' " + url("/hello.txt"), &output);
  EXPECT_EQ(output, "304");
}

TEST_F(Http, MissingFilesAre404) {
  auto r = http_get(port(), "/nope.txt");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
}

TEST_F(Http, PathEscapesAreRefused) {
  for (const std::string path : {"/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2e%2fsecret.txt", "/docs/../../secret.txt",
                                 "/escape.txt", "/..%2f..%2fetc/passwd"}) {
    auto r = http_get(port(), path);
    ASSERT_TRUE(r) << path;
    EXPECT_TRUE(r->status == 403 || r->status == 404) << path << " -> " << r->status;
    EXPECT_EQ(r->body.find("outside the root"), std::string::npos) << path;
  }
  auto inside = http_get(port(), "/inside.txt");
  ASSERT_TRUE(inside);
  EXPECT_EQ(inside->status, 200) << "a symlink that stays inside the root is fine";
}

TEST_F(Http, GarbageGets400AndTheConnectionCloses) {
  int fd = connect_tcp("127.0.0.1", port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, "\x01\x02 this is not http\r\n\r\n"));
  std::string reply = read_until_close(fd, 3s);
  close(fd);
  EXPECT_EQ(reply.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << reply;
  EXPECT_NE(reply.find("Connection: close"), std::string::npos) << reply;
}

TEST_F(Http, UnsupportedMethodsGet405Or501) {
  auto post = http_get(port(), "/hello.txt", "Content-Length: 0\r\n", "POST");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 405);
  EXPECT_EQ(post->header("Allow"), "GET, HEAD");
  auto trace = http_get(port(), "/hello.txt", "", "TRACE");
  ASSERT_TRUE(trace);
  EXPECT_EQ(trace->status, 501);
}

TEST_F(Http, KeepAliveAndPipeliningAnswerInOrder) {
  int fd = connect_tcp("127.0.0.1", port());
  ASSERT_GE(fd, 0);
  // Three requests in one write, including the big streamed file in the middle.
  ASSERT_TRUE(send_all(fd,
                       "GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n"
                       "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n"
                       "GET /style.css HTTP/1.1\r\nHost: t\r\n\r\n"));
  std::string carry;
  auto a = read_response(fd, &carry);
  auto b = read_response(fd, &carry);
  auto c = read_response(fd, &carry);
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(a->body, "hello from preforkd\n");
  EXPECT_EQ(b->body, read_file(server_->root() + "/big.bin"));
  EXPECT_EQ(c->body, "body{}\n");
  // The connection is still open for a fourth.
  ASSERT_TRUE(send_all(fd, "GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto d = read_response(fd, &carry);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->status, 200);
  close(fd);
}

// Small answers leave as one buffer (head and body copied together). A reader with
// a 4 KiB window that waits before reading fills the worker's socket, so later
// answers queue behind it: every one must still arrive whole and in order. (A
// partial send inside one buffer is rare on loopback; StreamWrite in the unit
// tests forces it.)
TEST_F(Http, SmallPipelinedAnswersToASlowReaderArriveWholeAndInOrder) {
  int fd = connect_tcp("127.0.0.1", port(), 5s, 4096);
  ASSERT_GE(fd, 0);
  const int kRequests = 1200;  // ~43 KB asked, ~350 KB answered: far more than the window
  std::string requests;
  for (int i = 0; i < kRequests; ++i)
    requests += i % 3 == 2 ? "HEAD /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n"
                           : (i % 3 == 0 ? "GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n"
                                         : "GET /style.css HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(send_all(fd, requests));
  ::usleep(300 * 1000);  // the server fills the window and queues the rest
  std::string carry;
  int whole = 0;
  for (int i = 0; i < kRequests; ++i) {
    bool head = i % 3 == 2;
    auto r = read_response(fd, &carry, head);
    ASSERT_TRUE(r) << "answer " << i << " of " << kRequests << " did not arrive";
    ASSERT_EQ(r->status, 200) << i;
    if (head) {
      ASSERT_EQ(r->header("Content-Length"), "20") << i;
      ASSERT_EQ(r->body, "") << i;
    } else {
      ASSERT_EQ(r->body, i % 3 == 0 ? "hello from preforkd\n" : "body{}\n") << i;
    }
    ++whole;
  }
  EXPECT_EQ(whole, kRequests);
  EXPECT_EQ(carry, "") << "bytes after the last answer";
  ::close(fd);
}

TEST_F(Http, Http10ClosesUnlessAskedToKeepAlive) {
  int fd = connect_tcp("127.0.0.1", port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, "GET /hello.txt HTTP/1.0\r\n\r\n"));
  std::string reply = read_until_close(fd, 3s);
  close(fd);
  EXPECT_NE(reply.find("200 OK"), std::string::npos);
  EXPECT_EQ(reply.find("Connection: keep-alive"), std::string::npos);
  EXPECT_EQ(reply.substr(reply.size() - 20), "hello from preforkd\n") << "closed right after the body";

  fd = connect_tcp("127.0.0.1", port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, "GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  std::string carry;
  auto first = read_response(fd, &carry);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->header("Connection"), "keep-alive");
  ASSERT_TRUE(send_all(fd, "GET /style.css HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  auto second = read_response(fd, &carry);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->body, "body{}\n");
  close(fd);
}

TEST_F(Http, ServesOnIpv6Loopback) {
  if (!ipv6_loopback_available()) GTEST_SKIP() << "IPv6 loopback (::1) is not available here";
  Preforkd v6({.workers = 2, .ipv6 = true});
  std::string why;
  ASSERT_TRUE(v6.start(10s, &why)) << why;
  auto r = http_get(v6.http6_port(), "/hello.txt", "", "GET", "::1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello from preforkd\n");
}

}  // namespace
