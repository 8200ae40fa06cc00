// probe-server: a binary built on the installed-style API only (preforkd/*.hpp,
// linked against libpreforkd.so), serving a "probe" protocol that reports what
// the API gives it, for tests/integration/api_test.cpp: each hook logs where and
// as whom it runs, the factory logs the listener's key values, sessions count
// lines and open connections, and a loop timer proves the uv_loop_t is the
// worker's own.
//
// The protocol: each line "L\n" is answered "GREETING L\n" (upper case with
// shout = true). Retiring, a session finishes the line in progress, says "bye\n"
// and closes.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <memory>
#include <string>

#include <preforkd/preforkd.hpp>

namespace {

using preforkd::LogLevel;

class ProbeSession final : public preforkd::StreamSession {
 public:
  ProbeSession(preforkd::StreamTransport& transport, const std::string& greeting, bool shout, preforkd::Counter lines,
               preforkd::Counter open, preforkd::Counter requests, bool retiring)
      : transport_(transport), greeting_(greeting), shout_(shout), lines_(lines), open_(open), requests_(requests) {
    open_.set(open_.value() + 1);
    (void)retiring;  // on_retire follows at once for a connection accepted while retiring
  }
  ~ProbeSession() override { open_.set(open_.value() - 1); }

  void on_data(std::string_view bytes) override {
    if (done_) return;
    pending_.append(bytes);
    std::size_t end;
    while ((end = pending_.find('\n')) != std::string::npos) {
      std::string line = pending_.substr(0, end);
      pending_.erase(0, end + 1);
      std::string reply = greeting_ + " " + line + "\n";
      if (shout_) std::transform(reply.begin(), reply.end(), reply.begin(), [](unsigned char c) { return std::toupper(c); });
      transport_.write(std::move(reply));
      lines_.add();
      requests_.add();
    }
    if (retiring_ && pending_.empty()) goodbye();
  }
  void on_eof() override {
    done_ = true;
    transport_.shutdown_and_close();
  }
  // A zero-loss retirement for a line protocol: the line in progress is answered,
  // then "bye" tells the client to come back on a new connection.
  void on_retire() override {
    retiring_ = true;
    if (pending_.empty()) goodbye();
  }

 private:
  void goodbye() {
    if (done_) return;
    done_ = true;
    transport_.write("bye\n");
    transport_.shutdown_and_linger();
  }

  preforkd::StreamTransport& transport_;
  const std::string& greeting_;
  bool shout_;
  preforkd::Counter lines_, open_, requests_;
  std::string pending_;
  bool retiring_ = false;
  bool done_ = false;
};

class ProbeHandler final : public preforkd::StreamHandler {
 public:
  ProbeHandler(preforkd::Listener& listener)
      : greeting_(listener.string("greeting")),
        shout_(listener.boolean("shout")),
        lines_(listener.worker().counter("lines")),
        open_(listener.worker().counter("open")),
        requests_(listener.worker().requests()),
        worker_(listener.worker()) {
    preforkd::log::write(LogLevel::notice, "probe: handler pid=%d listener=%s address=%s greeting=%s max_lines=%lld "
                         "shout=%d linger=%g data_file=%s",
                         static_cast<int>(getpid()), listener.name().c_str(), listener.address().c_str(),
                         greeting_.c_str(), static_cast<long long>(listener.integer("max_lines")), shout_ ? 1 : 0,
                         listener.duration("linger"), listener.string("data_file").c_str());
  }
  ~ProbeHandler() override {
    preforkd::log::write(LogLevel::notice, "probe: handler destroyed pid=%d", static_cast<int>(getpid()));
  }
  std::unique_ptr<preforkd::StreamSession> open_session(preforkd::StreamTransport& transport) override {
    return std::make_unique<ProbeSession>(transport, greeting_, shout_, lines_, open_, requests_, worker_.retiring());
  }

 private:
  std::string greeting_;
  bool shout_;
  preforkd::Counter lines_, open_, requests_;
  preforkd::Worker& worker_;
};

class Probe final : public preforkd::Protocol {
 public:
  Probe() : Protocol("probe", preforkd::Transport::stream) {}

  void declare(preforkd::Schema& schema) const override {
    schema.string("greeting", "hi");
    schema.integer("max_lines", 1000, 1, 1'000'000);
    schema.boolean("shout", false);
    schema.duration("linger", 0.2);
    schema.path("data_file", "probe.data");
    schema.counter("lines", "Lines answered by the probe protocol.");
    schema.gauge("open", "Probe connections open now.");
  }

  std::unique_ptr<preforkd::StreamHandler> stream_handler(preforkd::Listener& listener) override {
    return std::make_unique<ProbeHandler>(listener);
  }

  void on_worker_start(preforkd::Worker& worker) override {
    preforkd::log::write(LogLevel::notice, "probe: start pid=%d ppid=%d uid=%d euid=%d slot=%d generation=%u retiring=%d",
                         static_cast<int>(getpid()), static_cast<int>(getppid()), static_cast<int>(getuid()),
                         static_cast<int>(geteuid()), worker.slot(), worker.generation(), worker.retiring() ? 1 : 0);
    // The worker's own loop: a timer on it ticks while the worker serves.
    timer_ = preforkd::UvHandle<uv_timer_t>(this);
    if (uv_timer_init(worker.loop(), timer_.get()) != 0) throw std::runtime_error("uv_timer_init failed");
    timer_.mark_initialized();
    uv_timer_start(timer_.get(), [](uv_timer_t* t) {
      auto* self = preforkd::owner_of<Probe>(t);
      if (self->ticks_++ == 0) preforkd::log::write(LogLevel::notice, "probe: first tick pid=%d", static_cast<int>(getpid()));
    }, 20, 20);
  }
  void on_worker_retire(preforkd::Worker& worker) override {
    preforkd::log::write(LogLevel::notice, "probe: retire pid=%d retiring=%d ticked=%d", static_cast<int>(getpid()),
                         worker.retiring() ? 1 : 0, ticks_ > 0 ? 1 : 0);
  }
  void on_worker_exit(preforkd::Worker&) override {
    preforkd::log::write(LogLevel::notice, "probe: exit pid=%d", static_cast<int>(getpid()));
    timer_.reset();  // the worker's loop ends only once every handle is closed
  }

 private:
  preforkd::UvHandle<uv_timer_t> timer_;
  long ticks_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  static Probe probe;
  // Test hook: a protocol registered twice must stop the binary at once.
  if (std::getenv("PROBE_REGISTER_TWICE")) return preforkd::main(argc, argv, {probe, probe});
  return preforkd::main(argc, argv, {probe});
}
