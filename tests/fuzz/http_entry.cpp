// The HTTP fuzz target: the real HTTP layer serving the static-file handler, as the
// built-in http protocol does (make_http_layer + make_static_handler), on a FakeTransport,
// fed the client's bytes in fuzzer-chosen chunks, driven the way StreamConnection
// drives it (writes complete later, on_writes_done, reading paused and resumed,
// EOF, retirement), with every response checked by ResponseChecker.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tests/fuzz/fake_transport.hpp"
#include "tests/fuzz/fuzz_entries.hpp"
#include "tests/fuzz/response_checker.hpp"
#include "tests/fuzz/temp_dir.hpp"
#include "worker/http_limits.hpp"
#include "worker/http_session.hpp"
#include "worker/static_handler.hpp"

namespace preforkd::fuzz {
namespace {

enum Flags : std::uint8_t { kEofAtEnd = 1, kRetireAfterFirstChunk = 2, kLetWritesPileUp = 4, kTimeoutAtEnd = 8 };

// Writes completed in a row before giving up: a big file takes a few rounds, a
// session that never stops writing is a bug.
constexpr int kMaxSettleRounds = 1000;

// Small files are answered in one write, one larger than the session's 256 KiB
// chunk is streamed; contents never start with "HTTP/" (see ResponseChecker).
struct Docroot {
  TempDir dir;
  Docroot() {
    dir.write("index.html", "<!doctype html><title>fuzz</title><p>index</p>\n");
    dir.write("hello.txt", "hello\n");
    dir.write("empty.txt", "");
    dir.write("big.bin", std::string(256 * 1024 + 1000, 'b'));
    dir.mkdir("sub");
    dir.write("sub/index.html", "<p>sub</p>\n");
    dir.write("sub/a b.css", "p{}\n");
  }
};

class Driver {
 public:
  Driver(StreamHandler& handler) : session_(handler.open_session(transport_)) {
    transport_.resume_reading();  // StreamConnection::start starts reading after open_session
  }

  void data(std::string_view bytes) {
    require_reading();
    session_->on_data(bytes);
    collect();
  }
  void eof() {
    require_reading();
    transport_.pause_reading();  // StreamConnection stops reading before on_eof
    session_->on_eof();
    collect();
  }
  // The armed timer fires (header, idle or send timeout, whichever is armed).
  void timeout() {
    if (transport_.closed() || transport_.timeout_ms() == 0) return;
    session_->on_timeout();
    collect();
  }
  void retire() {
    if (transport_.closed()) return;  // StreamConnection::retire skips closing connections
    session_->on_retire();
    collect();
  }
  // The peer reads everything: writes complete and the session hears of it, until
  // it has nothing more to send.
  void settle() {
    for (int round = 0; round < kMaxSettleRounds; ++round) {
      if (transport_.closed() || !transport_.complete_writes()) return;
      session_->on_writes_done();
      collect();
    }
    throw FuzzFailure("session still writing after " + std::to_string(kMaxSettleRounds) + " completed writes");
  }

  FakeTransport& transport() { return transport_; }
  void finish() { checker_.finish(); }

 private:
  // A paused connection with nothing in flight is never read again: it would hang
  // until the peer gives up.
  void require_reading() {
    if (!transport_.reading()) throw FuzzFailure("reading paused with no write pending: the connection hangs");
  }
  void collect() {
    for (const auto& w : transport_.take_writes()) checker_.on_write(w.head, w.body);
  }

  FakeTransport transport_;
  ResponseChecker checker_;
  std::unique_ptr<StreamSession> session_;
};

}  // namespace

void http_one_input(const std::uint8_t* data, std::size_t size) {
  static Docroot docroot;
  static std::uint64_t requests = 0;
  // The built-in http's defaults (http::declare_keys).
  static std::unique_ptr<StreamHandler> handler =
      make_http_layer(make_static_handler(docroot.dir.path()), HttpLimits{}, Counter(&requests));
  if (size < 2) return;
  std::uint8_t flags = data[0];
  std::size_t k = data[1] % 16;
  if (size < 2 + k) return;
  std::vector<std::size_t> lengths;
  for (std::size_t i = 0; i < k; ++i) lengths.push_back(data[2 + i] == 0 ? 256 : data[2 + i]);
  std::string_view input(reinterpret_cast<const char*>(data) + 2 + k, size - 2 - k);

  Driver driver(*handler);
  FakeTransport& transport = driver.transport();
  bool retired = false;
  for (std::size_t pos = 0, chunk = 0; pos < input.size(); ++chunk) {
    if (!(flags & kLetWritesPileUp) || !transport.reading()) driver.settle();
    if (transport.finished()) break;
    std::size_t n = lengths.empty() ? input.size() : lengths[chunk % lengths.size()];
    n = std::min(n, input.size() - pos);
    driver.data(input.substr(pos, n));
    pos += n;
    if ((flags & kRetireAfterFirstChunk) && !retired) {
      retired = true;
      driver.retire();
    }
  }
  driver.settle();
  if (flags & kTimeoutAtEnd) {
    driver.timeout();
    driver.settle();
  }
  if ((flags & kEofAtEnd) && !transport.finished()) {
    driver.eof();
    driver.settle();
    // After EOF every answer is flushed and the connection closed; one left open
    // would leak until the worker exits.
    if (!transport.finished()) throw FuzzFailure("peer sent EOF but the connection is never closed");
  }
  driver.finish();
}

}  // namespace preforkd::fuzz
