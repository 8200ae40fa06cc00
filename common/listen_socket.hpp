// Creating listening sockets: one per worker per listener, each with SO_REUSEPORT
// set before bind() so the kernel spreads new connections across the group.
#pragma once

#include <string>

#include "common/address.hpp"

namespace preforkd {

enum class Transport { stream, datagram };

// Creates, configures, binds and (for streams) listens. Returns a non-blocking,
// close-on-exec fd, or -1 with *error naming the failing call and address
// ("bind 127.0.0.1:8080: Address already in use").
// With reuseport false the socket is meant to be shared by every worker and does
// not join a SO_REUSEPORT group.
int open_listen_socket(const SocketAddress& address, Transport transport, int backlog, bool reuseport,
                       std::string* error);

}  // namespace preforkd
