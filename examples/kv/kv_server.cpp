// kv-server: a line-protocol key-value store on preforkd, written against the
// installed library only (#include <preforkd/preforkd.hpp>, libpreforkd). Every
// worker keeps its own store (a cache, not a database: a reload or a recycled
// worker starts empty); a client's connection stays with one worker.
//
// Protocol, one command per line ("\n" or "\r\n"), one answer line each:
//   SET key value   -> OK                  (ERROR full: the worker holds max_keys keys)
//   GET key         -> VALUE value | NOT_FOUND
//   DEL key         -> DELETED | NOT_FOUND
//   COUNT           -> COUNT n
//   QUIT            -> BYE, then the server closes
// anything else     -> ERROR ...
// BYE is also what a retiring worker (reload, QUIT, TTOU, max_requests) sends
// after answering the commands it already has: a command the client sent after
// it was not executed, and goes again on a new connection. That is the whole
// zero-loss contract (HTTP's Connection: close, for a line protocol).
//
// [[listen]] keys: max_keys (default 10000), max_line (bytes, default 4096),
// idle_timeout (default 60 s). Counters: preforkd_kv_commands_total,
// preforkd_kv_rejected_total (SETs refused for max_keys), gauge preforkd_kv_keys.
#include <preforkd/preforkd.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

namespace {

using preforkd::Counter;

constexpr std::size_t kMaxQueuedBytes = 1 << 20;  // stop reading while the peer does not read

// The worker's store: one per process, shared by every kv listener and connection.
struct Store {
  std::unordered_map<std::string, std::string> map;
  Counter commands, rejected, keys;
};

struct Limits {
  std::size_t max_keys;
  std::size_t max_line;
  std::uint64_t idle_timeout_ms;
};

class KvSession final : public preforkd::StreamSession {
 public:
  KvSession(preforkd::StreamTransport& transport, Store& store, const Limits& limits, Counter requests)
      : transport_(transport), store_(store), limits_(limits), requests_(requests) {
    transport_.set_timeout(limits_.idle_timeout_ms);
  }

  void on_data(std::string_view bytes) override {
    if (closing_) return;
    transport_.set_timeout(limits_.idle_timeout_ms);
    input_.append(bytes);
    std::string out;
    std::size_t end;
    while (!closing_ && (end = input_.find('\n')) != std::string::npos) {
      std::string_view line(input_.data(), end);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      out += answer(line);
      input_.erase(0, end + 1);
    }
    if (!closing_ && input_.size() > limits_.max_line) {
      out += "ERROR line too long\n";
      closing_ = true;
    }
    if (!out.empty()) transport_.write(std::move(out));
    if (closing_) return transport_.shutdown_and_linger();
    if (retiring_ && input_.empty()) return goodbye();
    if (transport_.write_queue_size() > kMaxQueuedBytes) transport_.pause_reading();
  }

  void on_writes_done() override {
    if (!closing_) transport_.resume_reading();
  }
  void on_eof() override {
    closing_ = true;
    transport_.shutdown_and_close();
  }
  // Between commands: BYE now. In the middle of one: after answering it.
  void on_retire() override {
    retiring_ = true;
    if (input_.empty()) goodbye();
  }
  void on_timeout() override {
    if (transport_.writes_pending()) return transport_.set_timeout(limits_.idle_timeout_ms);
    closing_ = true;
    transport_.close();
  }

 private:
  std::string answer(std::string_view line) {
    store_.commands.add();
    requests_.add();  // max_requests recycling and preforkd_requests_total count commands
    std::string_view command = word(line);
    if (command == "GET") {
      auto it = store_.map.find(std::string(word(line)));
      return it == store_.map.end() ? "NOT_FOUND\n" : "VALUE " + it->second + "\n";
    }
    if (command == "SET") {
      std::string key(word(line));
      if (key.empty()) return "ERROR SET needs a key\n";
      auto it = store_.map.find(key);
      if (it != store_.map.end()) {
        it->second = std::string(line);
        return "OK\n";
      }
      if (store_.map.size() >= limits_.max_keys) {
        store_.rejected.add();
        return "ERROR full (max_keys " + std::to_string(limits_.max_keys) + ")\n";
      }
      store_.map.emplace(std::move(key), std::string(line));
      store_.keys.set(store_.map.size());
      return "OK\n";
    }
    if (command == "DEL") {
      bool erased = store_.map.erase(std::string(word(line))) > 0;
      store_.keys.set(store_.map.size());
      return erased ? "DELETED\n" : "NOT_FOUND\n";
    }
    if (command == "COUNT") return "COUNT " + std::to_string(store_.map.size()) + "\n";
    if (command == "QUIT") {
      closing_ = true;
      return "BYE\n";
    }
    return "ERROR unknown command\n";
  }

  // The next space-separated word of *line, removed from it (with one space).
  static std::string_view word(std::string_view& line) {
    auto space = line.find(' ');
    std::string_view w = line.substr(0, space);
    line.remove_prefix(space == std::string_view::npos ? line.size() : space + 1);
    return w;
  }

  void goodbye() {
    if (closing_) return;
    closing_ = true;
    transport_.write("BYE\n");
    // Lingering: a command already on its way is read and dropped, not answered
    // with a reset that could destroy the BYE before the client reads it.
    transport_.shutdown_and_linger();
  }

  preforkd::StreamTransport& transport_;
  Store& store_;
  const Limits& limits_;
  Counter requests_;
  std::string input_;
  bool retiring_ = false;
  bool closing_ = false;
};

class KvHandler final : public preforkd::StreamHandler {
 public:
  KvHandler(Store& store, Limits limits, Counter requests) : store_(store), limits_(limits), requests_(requests) {}
  std::unique_ptr<preforkd::StreamSession> open_session(preforkd::StreamTransport& transport) override {
    return std::make_unique<KvSession>(transport, store_, limits_, requests_);
  }

 private:
  Store& store_;
  Limits limits_;
  Counter requests_;
};

class Kv final : public preforkd::Protocol {
 public:
  Kv() : Protocol("kv", preforkd::Transport::stream) {}

  void declare(preforkd::Schema& schema) const override {
    schema.integer("max_keys", 10000, 1, 10'000'000);
    schema.integer("max_line", 4096, 16, 1 << 20);
    schema.duration("idle_timeout", 60);
    schema.counter("commands", "Commands answered.");
    schema.counter("rejected", "SETs refused because the worker holds max_keys keys.");
    schema.gauge("keys", "Keys stored, over all workers.");
  }

  // After the privilege drop, in each worker: the store's counters.
  void on_worker_start(preforkd::Worker& worker) override {
    store_.commands = worker.counter("commands");
    store_.rejected = worker.counter("rejected");
    store_.keys = worker.counter("keys");
  }

  std::unique_ptr<preforkd::StreamHandler> stream_handler(preforkd::Listener& listener) override {
    Limits limits{static_cast<std::size_t>(listener.integer("max_keys")),
                  static_cast<std::size_t>(listener.integer("max_line")),
                  static_cast<std::uint64_t>(listener.duration("idle_timeout") * 1000)};
    return std::make_unique<KvHandler>(store_, limits, listener.worker().requests());
  }

 private:
  Store store_;
};

}  // namespace

int main(int argc, char** argv) {
  static Kv kv;
  return preforkd::main(argc, argv, {kv});
}
