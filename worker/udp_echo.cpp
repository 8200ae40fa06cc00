// udp-echo. Empty datagrams are echoed too: they are valid and some probes use them.
#include "worker/udp_echo.hpp"

namespace preforkd {
namespace {

class UdpEchoHandler final : public DatagramHandler {
 public:
  void on_datagram(std::string_view bytes, const sockaddr* peer, DatagramReplier& replier) override {
    replier.send_to(bytes, peer);
  }
};

}  // namespace

std::unique_ptr<DatagramHandler> make_udp_echo_handler() { return std::make_unique<UdpEchoHandler>(); }

}  // namespace preforkd
