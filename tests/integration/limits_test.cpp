// Limits and timeouts against hostile or broken clients, through the real binary:
// oversized requests, request smuggling, slow and silent clients, clients that
// never read, oversized datagrams, the per-worker connection cap and fd exhaustion.
// Timeouts are configured at 1 s so that each test takes a few seconds at most.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <sstream>
#include <thread>

#include "tests/integration/harness.hpp"
#include "tests/integration/proc_stats.hpp"

using namespace itest;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int status_of(const std::string& reply) {
  if (reply.compare(0, 9, "HTTP/1.1 ") != 0 || reply.size() < 12) return 0;
  return std::stoi(reply.substr(9, 3));
}

// Sends one raw request on a new connection; returns the status of the answer and
// whether the server then closed the connection (within 3 s).
struct Outcome {
  int status = 0;
  bool closed = false;
  std::string reply;
};
Outcome exchange(int port, const std::string& request) {
  Outcome out;
  int fd = connect_tcp("127.0.0.1", port);
  if (fd < 0) return out;
  if (send_all(fd, request)) {
    auto reply = wait_closed(fd, 3s);
    out.closed = reply.has_value();
    out.reply = reply.value_or("");
    out.status = status_of(out.reply);
  }
  close(fd);
  return out;
}

class Limits : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new Preforkd({.workers = 1,
                            .web_config = "max_request_line = 1024\nmax_header_size = 4096\n"
                                          "max_body_size = 10000\nheader_timeout = 1\n"
                                          "idle_timeout = 1\nsend_timeout = 1\n",
                            .echo_config = "idle_timeout = 1\nsend_timeout = 1\n",
                            .udp_config = "max_datagram_size = 1024\n"});
    std::string big(1 << 20, 'b');
    write_file(server_->root() + "/big.bin", big);
    std::string why;
    ASSERT_TRUE(server_->start(10s, &why)) << why;
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static int port() { return server_->http_port(); }
  static pid_t worker() {
    auto pids = server_->worker_pids();
    return pids.empty() ? 0 : pids[0];
  }
  // Sockets the worker holds beyond its listeners: its open connections.
  static std::size_t worker_sockets() { return socket_inodes_of(worker()).size(); }
  static bool wait_worker_sockets(std::size_t n, Millis timeout) {
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (worker_sockets() <= n) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }
  // The worker has accepted a connection beyond n (so a later wait for n is
  // not satisfied by a connection still in the accept queue).
  static bool wait_worker_sockets_above(std::size_t n, Millis timeout) {
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (worker_sockets() > n) return true;
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }
  static Preforkd* server_;
};
Preforkd* Limits::server_ = nullptr;

TEST_F(Limits, UrlOverMaxRequestLineGets414AndClose) {
  auto ok = exchange(port(), "GET /" + std::string(1000, 'a') + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(ok.status, 404) << "a URL under the limit is just a missing file";
  auto too_long = exchange(port(), "GET /" + std::string(1100, 'a') + " HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(too_long.status, 414) << too_long.reply;
  EXPECT_TRUE(too_long.closed);
  // Trickled in pieces, the URL is counted across reads.
  int fd = connect_tcp("127.0.0.1", port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, "GET /"));
  for (int i = 0; i < 12; ++i) ASSERT_TRUE(send_all(fd, std::string(100, 'x'))) << i;
  auto reply = wait_closed(fd, 3s);
  ASSERT_TRUE(reply);
  EXPECT_EQ(status_of(*reply), 414) << *reply;
  close(fd);
}

TEST_F(Limits, HeaderBlockOverMaxHeaderSizeGets431AndClose) {
  std::string headers;
  for (int i = 0; i < 30; ++i) headers += "X-Filler-" + std::to_string(i) + ": " + std::string(80, 'v') + "\r\n";
  auto ok = exchange(port(), "GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + headers + "\r\n");
  EXPECT_EQ(ok.status, 200) << "about 3 KiB of headers is under the 4 KiB limit";
  auto big = exchange(port(), "GET /hello.txt HTTP/1.1\r\nHost: t\r\n" + headers + headers + "\r\n");
  EXPECT_EQ(big.status, 431) << big.reply;
  EXPECT_TRUE(big.closed);
  // One endless header line, sent in small pieces: refused once past the limit,
  // not when http-parser's own 80 KiB limit is reached.
  int fd = connect_tcp("127.0.0.1", port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, "GET / HTTP/1.1\r\nX-Long: "));
  std::optional<std::string> reply;
  for (int i = 0; i < 20 && !reply; ++i) {
    if (!send_all(fd, std::string(512, 'z'))) break;
    reply = wait_closed(fd, 20ms);
  }
  if (!reply) reply = wait_closed(fd, 3s);
  ASSERT_TRUE(reply);
  EXPECT_EQ(status_of(*reply), 431) << *reply;
  close(fd);
}

TEST_F(Limits, BodyOverMaxBodySizeGets413AndClose) {
  for (const std::string method : {"POST", "GET"}) {
    auto r = exchange(port(), method + " /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 10001\r\n\r\n");
    EXPECT_EQ(r.status, 413) << method << ": " << r.reply;
    EXPECT_TRUE(r.closed) << method;
  }
  // Chunked bodies announce no length: counted as they arrive.
  std::string chunk = "1000\r\n" + std::string(4096, 'c') + "\r\n";
  auto chunked = exchange(port(), "POST /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" +
                                      chunk + chunk + chunk);
  EXPECT_EQ(chunked.status, 413) << chunked.reply;
  EXPECT_TRUE(chunked.closed);
}

TEST_F(Limits, BodiesWithinTheLimitAreConsumedNotParsedAsRequests) {
  int fd = connect_tcp("127.0.0.1", port());
  ASSERT_GE(fd, 0);
  // Each body holds a request of its own; it must be skipped, not answered.
  std::string hidden = "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n";
  std::string body = hidden + std::string(9000, 'p');
  std::ostringstream hex;
  hex << std::hex << hidden.size();
  ASSERT_TRUE(send_all(fd, "POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(body.size()) +
                               "\r\n\r\n" + body + "GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n" +
                               "POST /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" +
                               hex.str() + "\r\n" + hidden + "\r\n0\r\n\r\n" +
                               "GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
  std::string carry;
  for (int expected : {405, 200, 405, 200}) {
    auto r = read_response(fd, &carry);
    ASSERT_TRUE(r) << "expected " << expected;
    EXPECT_EQ(r->status, expected);
    if (expected == 200) {
      EXPECT_EQ(r->body, "hello from preforkd\n");
    }
  }
  auto rest = wait_closed(fd, 3s);
  ASSERT_TRUE(rest) << "Connection: close was ignored";
  EXPECT_EQ(carry + *rest, "") << "a hidden request was answered";
  close(fd);
}

TEST_F(Limits, RequestSmugglingAttemptsGet400AndClose) {
  const std::string get = "GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"CL and TE", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
      {"TE and CL", "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"},
      {"duplicate CL", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nabcde"},
      {"conflicting CL", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef"},
      {"CL list", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 5\r\n\r\nabcde"},
      {"CL not a number", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5x\r\n\r\nabcde"},
      {"CL negative", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n"},
      {"CL overflow", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 184467440737095516160\r\n\r\n"},
      {"TE unknown", "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\nabc"},
      {"TE gzip, chunked", "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"},
      {"TE twice", "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
      {"TE on HTTP/1.0", "POST / HTTP/1.0\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
      {"bad chunk size", "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n"},
  };
  for (const auto& [name, request] : cases) {
    // A request after it must not be answered: the connection ends at the 400.
    auto r = exchange(port(), request + get);
    EXPECT_EQ(r.status, 400) << name << ": " << r.reply;
    EXPECT_TRUE(r.closed) << name;
    EXPECT_EQ(r.reply.find("hello from preforkd"), std::string::npos) << name;
  }
}

TEST_F(Limits, SlowlorisIsClosedAfterHeaderTimeout) {
  int fd = connect_tcp("127.0.0.1", port());
  ASSERT_GE(fd, 0);
  auto start = Clock::now();
  ASSERT_TRUE(send_all(fd, "GET /hello.txt HTTP/1.1\r\n"));
  // One header byte every 100 ms: each read arrives well within any per-read
  // timeout; only a deadline for the whole header block stops it.
  std::optional<std::string> reply;
  for (int i = 0; i < 50 && !reply; ++i) {
    if (!send_all(fd, "X")) break;
    reply = wait_closed(fd, 100ms);
  }
  if (!reply) reply = wait_closed(fd, 1s);
  double took = seconds_since(start);
  ASSERT_TRUE(reply) << "still open after " << took << " s";
  EXPECT_EQ(status_of(*reply), 408) << *reply;
  EXPECT_GE(took, 0.9);
  EXPECT_LE(took, 2.5);
  std::printf("slowloris closed after %.2f s (header_timeout = 1 s)\n", took);
  close(fd);
}

TEST_F(Limits, SilentAndIdleConnectionsAreClosed) {
  // Never sends a byte: header_timeout applies to the first request too.
  int silent = connect_tcp("127.0.0.1", port());
  ASSERT_GE(silent, 0);
  auto start = Clock::now();
  auto reply = wait_closed(silent, 4s);
  double took = seconds_since(start);
  ASSERT_TRUE(reply) << "silent connection still open after 4 s";
  EXPECT_EQ(*reply, "") << "nothing was asked, nothing is answered";
  EXPECT_GE(took, 0.9);
  close(silent);

  // Keep-alive after one request: closed after idle_timeout; bare CRLFs (which
  // begin no request) do not keep it alive.
  int fd = connect_tcp("127.0.0.1", port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, "GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n"));
  std::string carry;
  auto r = read_response(fd, &carry);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  start = Clock::now();
  std::optional<std::string> rest;
  for (int i = 0; i < 40 && !rest; ++i) {
    if (!send_all(fd, "\r\n")) break;
    rest = wait_closed(fd, 100ms);
  }
  if (!rest) rest = wait_closed(fd, 1s);
  took = seconds_since(start);
  ASSERT_TRUE(rest) << "idle connection still open after " << took << " s";
  EXPECT_GE(took, 0.9);
  EXPECT_LE(took, 2.5);
  std::printf("idle keep-alive connection closed after %.2f s (idle_timeout = 1 s)\n", took);
  close(fd);
}

TEST_F(Limits, ClientThatNeverReadsIsClosedAfterSendTimeoutWithBoundedMemory) {
  std::size_t baseline_sockets = worker_sockets();
  long rss_before = rss_kib(worker());
  int fd = connect_tcp("127.0.0.1", port(), 3s, 4096);
  ASSERT_GE(fd, 0);
  std::string requests;
  for (int i = 0; i < 64; ++i) requests += "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n";
  // 64 MiB of responses asked for, none read.
  ASSERT_TRUE(send_all(fd, requests));
  auto start = Clock::now();
  ASSERT_TRUE(wait_worker_sockets_above(baseline_sockets, 2s)) << "connection never accepted";
  EXPECT_TRUE(wait_worker_sockets(baseline_sockets, 5s)) << "connection not closed by the send timeout";
  double took = seconds_since(start);
  long rss_after = rss_kib(worker());
  std::printf("never-reading client closed after %.2f s (send_timeout = 1 s); worker VmRSS %ld -> %ld KiB\n", took,
              rss_before, rss_after);
  EXPECT_GE(took, 0.9);
  if (!kSanitized) {  // ASan's quarantine keeps freed memory resident
    EXPECT_LT(rss_after - rss_before, 8 * 1024) << "queued output grew memory";
  }
  close(fd);
}

TEST_F(Limits, TcpEchoIdleAndNeverReadingClientsAreClosed) {
  int fd = connect_tcp("127.0.0.1", server_->echo_port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, "ping"));
  char buf[4];
  ASSERT_EQ(recv(fd, buf, sizeof buf, MSG_WAITALL), 4);
  auto start = Clock::now();
  auto rest = wait_closed(fd, 4s);
  double took = seconds_since(start);
  ASSERT_TRUE(rest) << "idle echo connection still open";
  EXPECT_GE(took, 0.9);
  close(fd);

  // Sends without reading: the worker stops reading at its queue bound, then the
  // send timeout closes the connection; memory does not follow the flood.
  std::size_t baseline_sockets = worker_sockets();
  long rss_before = rss_kib(worker());
  fd = connect_tcp("127.0.0.1", server_->echo_port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(wait_worker_sockets_above(baseline_sockets, 2s)) << "connection never accepted";
  fcntl(fd, F_SETFL, O_NONBLOCK);
  std::string chunk(65536, 'e');
  std::size_t sent = 0;
  start = Clock::now();
  bool closed = false;
  while (seconds_since(start) < 6) {
    ssize_t n = send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN) {
      closed = true;  // reset by the server
      break;
    }
    if (worker_sockets() <= baseline_sockets) {
      closed = true;
      break;
    }
    std::this_thread::sleep_for(20ms);
  }
  long rss_after = rss_kib(worker());
  std::printf("echo flood: %zu KiB sent unread, closed after %.2f s; worker VmRSS %ld -> %ld KiB\n", sent / 1024,
              seconds_since(start), rss_before, rss_after);
  EXPECT_TRUE(closed) << "flooding, never-reading echo client still connected";
  if (!kSanitized) {
    EXPECT_LT(rss_after - rss_before, 8 * 1024);
  }
  close(fd);
}

TEST_F(Limits, UdpEmptyAndOversizedDatagrams) {
  pid_t before = worker();
  auto empty = udp_roundtrip("127.0.0.1", server_->echo_port(), "");
  ASSERT_TRUE(empty) << "an empty datagram is echoed (empty)";
  EXPECT_EQ(*empty, "");
  auto oversized = udp_roundtrip("127.0.0.1", server_->echo_port(), std::string(1025, 'o'), 500ms);
  EXPECT_FALSE(oversized) << "a datagram over max_datagram_size was echoed (" << oversized->size() << " bytes)";
  auto at_limit = udp_roundtrip("127.0.0.1", server_->echo_port(), std::string(1024, 'k'));
  ASSERT_TRUE(at_limit);
  EXPECT_EQ(*at_limit, std::string(1024, 'k'));
  auto largest = udp_roundtrip("127.0.0.1", server_->echo_port(), std::string(65507, 'L'), 500ms);
  EXPECT_FALSE(largest);
  EXPECT_EQ(worker(), before) << "the worker was replaced";
}

TEST_F(Limits, SigpipeIsIgnoredByMasterAndWorkers) {
  EXPECT_TRUE(signal_ignored(server_->master_pid(), SIGPIPE)) << "master";
  for (pid_t w : server_->worker_pids()) EXPECT_TRUE(signal_ignored(w, SIGPIPE)) << "worker " << w;
}

// --- The connection cap and fd exhaustion ---------------------------------------

TEST(ConnectionCap, WorkerStopsAcceptingAtMaxConnectionsAndResumesBelow) {
  Preforkd server({.workers = 1, .top_config = "max_connections = 3"});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  pid_t worker = server.worker_pids().at(0);
  std::vector<int> held;
  for (int i = 0; i < 3; ++i) {
    int fd = connect_tcp("127.0.0.1", server.http_port());
    ASSERT_GE(fd, 0);
    // One request each, so we know the worker accepted it.
    ASSERT_TRUE(send_all(fd, "GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n"));
    std::string carry;
    ASSERT_TRUE(read_response(fd, &carry)) << i;
    held.push_back(fd);
  }
  int waiting = connect_tcp("127.0.0.1", server.http_port());
  ASSERT_GE(waiting, 0) << "the kernel queues it";
  ASSERT_TRUE(send_all(waiting, "GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
  double cpu_before = cpu_seconds(worker);
  pollfd p{waiting, POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 1000), 0) << "a 4th connection was served at max_connections = 3";
  double cpu_used = cpu_seconds(worker) - cpu_before;
  std::printf("worker CPU while at the cap for 1 s: %.3f s\n", cpu_used);
  EXPECT_LT(cpu_used, 0.2) << "busy loop at the cap";
  EXPECT_TRUE(server.wait_log("max_connections reached", 2s));
  close(held.back());
  held.pop_back();
  std::string carry;
  auto r = read_response(waiting, &carry, false, 3s);
  ASSERT_TRUE(r) << "not served after a connection closed";
  EXPECT_EQ(r->status, 200);
  close(waiting);
  for (int fd : held) close(fd);
}

TEST(FdExhaustion, EmfileNeitherSpinsNorCrashesAndRecovers) {
  if (kSanitized) {
    // UBSan's vptr check probes memory through a pipe(); out of fds, the probe
    // fails and it reports a false "invalid vptr" at the next virtual call.
    GTEST_SKIP() << "not under sanitizers: their runtime needs fds of its own";
  }
  Preforkd server({.workers = 1, .rlimit_nofile = "40"});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  ASSERT_TRUE(server.wait_log("RLIMIT_NOFILE lowered to 40", 2s)) << server.log();
  pid_t worker = server.worker_pids().at(0);
  std::vector<int> clients;
  for (int i = 0; i < 80; ++i) {
    int fd = connect_tcp("127.0.0.1", server.http_port());
    ASSERT_GE(fd, 0) << i;
    clients.push_back(fd);
  }
  ASSERT_TRUE(server.wait_log("Too many open files; pausing accept", 3s)) << server.log();
  double cpu_before = cpu_seconds(worker);
  auto start = Clock::now();
  // Measured over 2 s while out of fds; the 100 ms retries cost a few syscalls.
  while (seconds_since(start) < 2.0) std::this_thread::sleep_for(50ms);
  double cpu_used = cpu_seconds(worker) - cpu_before;
  std::printf("worker CPU over 2 s out of fds: %.3f s\n", cpu_used);
  EXPECT_LT(cpu_used, 0.3) << "spinning on EMFILE";
  for (int fd : clients) close(fd);
  // The queued connections are accepted (and found closed) as fds free up, then
  // a new request is served by the same worker.
  std::optional<HttpResponse> r;
  auto deadline = Clock::now() + 5s;
  while (!r && Clock::now() < deadline) {
    r = http_get(server.http_port(), "/hello.txt");
    if (!r) std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(r) << "no recovery after fds were freed:\n" << server.log();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(server.worker_pids(), std::vector<pid_t>{worker}) << "the worker died";
  EXPECT_TRUE(server.wait_log("accepting again", 2s));
}

}  // namespace
