#include "common/address.hpp"

#include <arpa/inet.h>

#include <cstring>

namespace preforkd {

namespace {

bool fail(std::string* error, std::string_view text, const char* why) {
  if (error != nullptr) {
    *error = "\"" + std::string(text) + "\": " + why;
  }
  return false;
}

// Strict digits only: strtol would accept "+80", " 80" and "80abc".
bool parse_port(std::string_view digits, in_port_t* out) {
  if (digits.empty() || digits.size() > 5) return false;
  unsigned value = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value == 0 || value > 65535) return false;
  *out = static_cast<in_port_t>(value);
  return true;
}

bool port_error(std::string* error, std::string_view text, std::string_view digits) {
  if (digits.empty()) return fail(error, text, "missing port (expected IPv4:port or [IPv6]:port)");
  return fail(error, text, "port must be a number from 1 to 65535");
}

bool parse_v6(std::string_view text, SocketAddress* out, std::string* error) {
  const auto close = text.find(']');
  if (close == std::string_view::npos) return fail(error, text, "missing ']' after IPv6 address");
  const std::string host(text.substr(1, close - 1));
  const std::string_view rest = text.substr(close + 1);
  if (rest.empty()) return fail(error, text, "missing port (expected [IPv6]:port)");
  if (rest.front() != ':') return fail(error, text, "unexpected text after ']'");
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  if (inet_pton(AF_INET6, host.c_str(), &sin6.sin6_addr) != 1) {
    return fail(error, text, "not a valid IPv6 address");
  }
  in_port_t port = 0;
  if (!parse_port(rest.substr(1), &port)) return port_error(error, text, rest.substr(1));
  sin6.sin6_port = htons(port);
  std::memcpy(&out->storage, &sin6, sizeof sin6);
  out->length = sizeof sin6;
  return true;
}

bool parse_v4(std::string_view text, SocketAddress* out, std::string* error) {
  const auto colon = text.find(':');
  if (colon == std::string_view::npos) {
    return fail(error, text, "missing port (expected IPv4:port or [IPv6]:port)");
  }
  if (text.find(':', colon + 1) != std::string_view::npos) {
    return fail(error, text, "IPv6 addresses must be written in brackets, as [::1]:8080");
  }
  const std::string host(text.substr(0, colon));
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  // Names are refused rather than resolved: a listener must not depend on DNS
  // being up when the server starts, and a name can map to several addresses.
  if (inet_pton(AF_INET, host.c_str(), &sin.sin_addr) != 1) {
    return fail(error, text, "not an IPv4 address (host names are not accepted)");
  }
  in_port_t port = 0;
  const std::string_view digits = text.substr(colon + 1);
  if (!parse_port(digits, &port)) return port_error(error, text, digits);
  sin.sin_port = htons(port);
  std::memcpy(&out->storage, &sin, sizeof sin);
  out->length = sizeof sin;
  return true;
}

}  // namespace

int SocketAddress::port() const {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  if (family() == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  }
  return 0;
}

std::string SocketAddress::to_string() const { return format_sockaddr(sa()); }

bool SocketAddress::operator==(const SocketAddress& other) const {
  if (family() != other.family() || port() != other.port()) return false;
  if (family() == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&storage);
    const auto* b = reinterpret_cast<const sockaddr_in*>(&other.storage);
    return a->sin_addr.s_addr == b->sin_addr.s_addr;
  }
  if (family() == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&storage);
    const auto* b = reinterpret_cast<const sockaddr_in6*>(&other.storage);
    return std::memcmp(&a->sin6_addr, &b->sin6_addr, sizeof a->sin6_addr) == 0;
  }
  // Neither v4 nor v6 (e.g. a default-constructed address): nothing else to compare.
  return true;
}

std::optional<SocketAddress> parse_address(std::string_view text, std::string* error) {
  SocketAddress out;
  if (text.empty()) {
    fail(error, text, "empty address (expected IPv4:port or [IPv6]:port)");
    return std::nullopt;
  }
  // inet_pton stops at a NUL, which would let "127.0.0.1\0junk:80" through.
  if (text.find('\0') != std::string_view::npos) {
    if (error != nullptr) *error = "address contains a NUL character";
    return std::nullopt;
  }
  const bool ok = text.front() == '[' ? parse_v6(text, &out, error) : parse_v4(text, &out, error);
  if (!ok) return std::nullopt;
  return out;
}

std::string format_sockaddr(const sockaddr* sa) {
  if (sa == nullptr) return "(none)";
  char host[INET6_ADDRSTRLEN] = {};
  if (sa->sa_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(sin->sin_port));
  }
  if (sa->sa_family == AF_INET6) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host);
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(sin6->sin6_port));
  }
  return "(address family " + std::to_string(sa->sa_family) + ")";
}

}  // namespace preforkd
