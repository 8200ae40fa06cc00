// Listener addresses as operators write them ("127.0.0.1:8080", "[::1]:8080").
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <optional>
#include <string>
#include <string_view>

namespace preforkd {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  int family() const { return storage.ss_family; }
  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&storage); }
  int port() const;
  // Canonical text: "127.0.0.1:8080" or "[::1]:8080".
  std::string to_string() const;
  bool operator==(const SocketAddress& other) const;
};

// Parses "IPv4:port" or "[IPv6]:port". Port must be 1..65535: port 0 would give
// every worker's SO_REUSEPORT socket a different ephemeral port.
// Returns nullopt and sets *error (when given) on bad input.
std::optional<SocketAddress> parse_address(std::string_view text, std::string* error = nullptr);

// Formats any sockaddr (v4 or v6) as parse_address's input format.
std::string format_sockaddr(const sockaddr* sa);

}  // namespace preforkd
