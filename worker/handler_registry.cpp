// Protocol name -> handler. Adding a protocol: a file with its handler, a value in
// config's Protocol enum, a case here.
#include "worker/handler_registry.hpp"

#include "worker/echo_handler.hpp"
#include "worker/http_handler.hpp"
#include "worker/udp_echo.hpp"

namespace preforkd {

std::unique_ptr<StreamHandler> make_stream_handler(const ListenerConfig& listener, WorkerStats& stats) {
  switch (listener.protocol) {
    case Protocol::http: return make_http_handler(listener, stats);
    case Protocol::tcp_echo:
      return make_tcp_echo_handler(to_timer_ms(listener.limits.idle_timeout_s));
    case Protocol::udp_echo:
    case Protocol::tcp:  // exec-mode transports: served by the [exec] program, never a built-in worker
    case Protocol::udp: return nullptr;
  }
  return nullptr;
}

std::unique_ptr<DatagramHandler> make_datagram_handler(const ListenerConfig& listener) {
  switch (listener.protocol) {
    case Protocol::udp_echo: return make_udp_echo_handler();
    case Protocol::http:
    case Protocol::tcp_echo:
    case Protocol::tcp:
    case Protocol::udp: return nullptr;
  }
  return nullptr;
}

}  // namespace preforkd
