// Creating listening sockets: one per worker per listener, each with SO_REUSEPORT
// set before bind() so the kernel spreads new connections across the group.
#pragma once

#include <string>

#include <preforkd/protocol.hpp>  // Transport

#include "common/address.hpp"

namespace preforkd {

// Creates, configures, binds and (for streams) listens. Returns a non-blocking,
// close-on-exec fd, or -1 with *error naming the failing call and address
// ("bind 127.0.0.1:8080: Address already in use").
// With reuseport false the socket is meant to be shared by every worker and does
// not join a SO_REUSEPORT group.
int open_listen_socket(const SocketAddress& address, Transport transport, int backlog, bool reuseport,
                       std::string* error);

// listen(2) again with a new backlog: Linux updates a listening socket's accept
// queue limit in place (capped at net.core.somaxconn), queued connections stay.
// False with *error ("listen(fd 7, 128): ...") on failure.
bool set_listen_backlog(int fd, int backlog, std::string* error);

// The accept queue limit a listening socket runs with (TCP_INFO's tcpi_sacked on
// a listener), or -1.
int listen_backlog(int fd);

// What a socket holds that closing it would throw away: for a stream listener the
// connections whose handshake completed and that nobody accepted yet (TCP_INFO's
// tcpi_unacked on a listener), for a datagram socket 1 if a datagram is waiting,
// else 0. -1 if it cannot be read.
int queued_connections(int fd, Transport transport);

// Retiring a listener without resetting anything a client considers sent, in two
// steps on the same socket (a socket filter, so no privilege is needed and the
// socket stays bound and in its reuseport group meanwhile):
//  1. refuse_new_connections: packets that open a connection (TCP SYN without ACK)
//     are dropped, so no new handshake starts, while handshakes already under way
//     complete and queue as usual. A datagram socket drops everything (a datagram
//     is its own "connection"). Clients that keep retrying get "connection
//     refused" from their next SYN retransmission once the socket is closed.
//  2. freeze_listen_queue, right before the last accept-until-EAGAIN and close:
//     every packet is dropped, so no handshake can complete between that last
//     accept and the close (a dropped final ACK or data segment is retransmitted
//     by the client, and gets a reset only if it was never answered: the client
//     had no reply, nothing it considered delivered was lost).
// Children accepted after step 1 inherit its filter; it never drops anything on an
// established connection. allow_new_connections removes either filter (the
// listener came back in a reload before its socket closed).
bool refuse_new_connections(int fd, Transport transport, std::string* error);
bool freeze_listen_queue(int fd, std::string* error);
bool allow_new_connections(int fd, std::string* error);
// True when refuse_new_connections is in force on fd: this socket has no
// successor and its last user should freeze it before the final accept.
bool refusing_new_connections(int fd);

}  // namespace preforkd
