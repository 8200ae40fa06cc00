// udp-echo: each datagram goes back to its sender.
#pragma once

#include "worker/handler.hpp"

namespace preforkd {

std::unique_ptr<DatagramHandler> make_udp_echo_handler();

}  // namespace preforkd
