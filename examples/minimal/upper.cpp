// A complete preforkd application: the "upper" protocol answers each line in upper
// case, after an optional prefix (the listener's own `prefix` key). Build it
// against the installed library:
//   g++ -std=c++20 upper.cpp $(pkg-config --cflags --libs preforkd) -o upper
// and run it like preforkd itself: ./upper -c upper.toml (-t, -s reload, status...).
#include <preforkd/preforkd.hpp>

#include <cctype>
#include <memory>
#include <string>

namespace {

class UpperSession final : public preforkd::StreamSession {
 public:
  UpperSession(preforkd::StreamTransport& t, const std::string& prefix, preforkd::Counter requests)
      : t_(t), prefix_(prefix), requests_(requests) {}
  void on_data(std::string_view bytes) override {
    line_.append(bytes);
    for (std::size_t end; (end = line_.find('\n')) != std::string::npos; line_.erase(0, end + 1)) {
      std::string out = prefix_;
      for (char c : line_.substr(0, end + 1)) out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      t_.write(std::move(out));
      requests_.add();  // one line, one request (max_requests, /metrics)
    }
    if (retiring_ && line_.empty()) t_.shutdown_and_linger();
  }
  void on_eof() override { t_.shutdown_and_close(); }
  // Zero-loss reload: answer the line in progress, then close.
  void on_retire() override {
    retiring_ = true;
    if (line_.empty()) t_.shutdown_and_linger();
  }

 private:
  preforkd::StreamTransport& t_;
  const std::string& prefix_;  // the handler's: it outlives its sessions
  preforkd::Counter requests_;
  std::string line_;
  bool retiring_ = false;
};

class UpperHandler final : public preforkd::StreamHandler {
 public:
  explicit UpperHandler(preforkd::Listener& l) : prefix_(l.string("prefix")), requests_(l.worker().requests()) {}
  std::unique_ptr<preforkd::StreamSession> open_session(preforkd::StreamTransport& t) override {
    return std::make_unique<UpperSession>(t, prefix_, requests_);
  }

 private:
  std::string prefix_;
  preforkd::Counter requests_;
};

class Upper final : public preforkd::Protocol {
 public:
  Upper() : Protocol("upper", preforkd::Transport::stream) {}
  void declare(preforkd::Schema& schema) const override { schema.string("prefix", ""); }
  std::unique_ptr<preforkd::StreamHandler> stream_handler(preforkd::Listener& l) override {
    return std::make_unique<UpperHandler>(l);
  }
};

}  // namespace

int main(int argc, char** argv) {
  static Upper upper;
  return preforkd::main(argc, argv, {upper});
}
