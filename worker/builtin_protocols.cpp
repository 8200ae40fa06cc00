// The built-in protocols, written against the public API only (preforkd/*.hpp):
// each is a Protocol with its keys, its factory and nothing else.
#include "worker/builtin_protocols.hpp"

#include <preforkd/http.hpp>

#include "common/limits.hpp"
#include "worker/echo_handler.hpp"
#include "worker/static_handler.hpp"
#include "worker/udp_echo.hpp"

namespace preforkd {
namespace {

class StaticFiles final : public Protocol {
 public:
  StaticFiles() : Protocol("http", Transport::stream) {}
  void declare(Schema& schema) const override {
    schema.directory("root");
    http::declare_keys(schema);
  }
  std::unique_ptr<StreamHandler> stream_handler(Listener& listener) override {
    return http::serve(listener, make_static_handler(listener.string("root")));
  }
};

class TcpEcho final : public Protocol {
 public:
  TcpEcho() : Protocol("tcp-echo", Transport::stream) {}
  void declare(Schema& schema) const override { schema.duration("idle_timeout", 60); }
  std::unique_ptr<StreamHandler> stream_handler(Listener& listener) override {
    return make_tcp_echo_handler(to_timer_ms(listener.duration("idle_timeout")));
  }
};

class UdpEcho final : public Protocol {
 public:
  UdpEcho() : Protocol("udp-echo", Transport::datagram) {}
  std::unique_ptr<DatagramHandler> datagram_handler(Listener&) override { return make_udp_echo_handler(); }
};

}  // namespace

void register_builtin_protocols(ProtocolRegistry& registry) {
  static StaticFiles http;
  static TcpEcho tcp_echo;
  static UdpEcho udp_echo;
  registry.add(http);
  registry.add(tcp_echo);
  registry.add(udp_echo);
}

void ensure_builtin_protocols() {
  static const bool registered = (register_builtin_protocols(process_registry()), true);
  (void)registered;
}

}  // namespace preforkd
