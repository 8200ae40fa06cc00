// http_layer_loop N [SIZE]: N keep-alive requests for one cached SIZE-byte file
// (default 100) through one HTTP session serving the static-file handler, on a
// transport that only counts bytes: the user-space cost of a request without
// syscalls, libuv or the kernel. For instruction counts, which are steady on a
// noisy machine where CPU time is not:
//   valgrind --tool=callgrind build/bench/http_layer_loop 2000
//   valgrind --tool=callgrind build/bench/http_layer_loop 12000
//   instructions per request = (Ir(12000) - Ir(2000)) / 10000
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include "worker/http_session.hpp"
#include "worker/static_handler.hpp"

namespace {

struct CountingTransport final : preforkd::StreamTransport {
  std::size_t bytes = 0;
  void write(std::string head, std::string body) override { bytes += head.size() + body.size(); }
  void write_shared(std::string head, std::shared_ptr<const std::string> body) override {
    bytes += head.size() + body->size();
  }
  std::size_t write_queue_size() const override { return 0; }
  bool writes_pending() const override { return false; }
  void pause_reading() override {}
  void resume_reading() override {}
  void shutdown_and_close() override {}
  void close() override {}
};

}  // namespace

int main(int argc, char** argv) {
  long n = argc > 1 ? std::atol(argv[1]) : 1000;
  std::size_t size = argc > 2 ? static_cast<std::size_t>(std::atol(argv[2])) : 100;
  char dir[] = "/tmp/http-layer-loop-XXXXXX";
  if (mkdtemp(dir) == nullptr) return 1;
  char root[4096];
  if (realpath(dir, root) == nullptr) return 1;  // the handler wants a canonical root
  const std::string file = std::string(root) + "/f";
  std::ofstream(file) << std::string(size, 'x');
  std::uint64_t requests = 0;
  auto handler = preforkd::make_http_layer(preforkd::make_static_handler(root), preforkd::HttpLimits{},
                                           preforkd::Counter(&requests));
  CountingTransport transport;
  auto session = handler->open_session(transport);
  // What wrk sends.
  const std::string request = "GET /f HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
  for (long i = 0; i < n; ++i) {
    session->on_data(request);
    session->on_writes_done();
  }
  session.reset();
  std::printf("%llu requests, %zu bytes out\n", static_cast<unsigned long long>(requests), transport.bytes);
  ::unlink(file.c_str());
  ::rmdir(dir);
  return requests == static_cast<std::uint64_t>(n) ? 0 : 1;
}
