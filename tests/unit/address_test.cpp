#include "common/address.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>

namespace preforkd {
namespace {

SocketAddress must_parse(std::string_view text) {
  std::string error;
  auto parsed = parse_address(text, &error);
  EXPECT_TRUE(parsed.has_value()) << text << ": " << error;
  return parsed.value_or(SocketAddress{});
}

TEST(ParseAddress, AcceptsIpv4) {
  const SocketAddress a = must_parse("127.0.0.1:8080");
  EXPECT_EQ(a.family(), AF_INET);
  EXPECT_EQ(a.length, sizeof(sockaddr_in));
  EXPECT_EQ(a.port(), 8080);
  EXPECT_EQ(a.to_string(), "127.0.0.1:8080");
}

TEST(ParseAddress, AcceptsIpv4Wildcard) {
  const SocketAddress a = must_parse("0.0.0.0:7");
  EXPECT_EQ(a.family(), AF_INET);
  EXPECT_EQ(a.port(), 7);
  EXPECT_EQ(a.to_string(), "0.0.0.0:7");
}

TEST(ParseAddress, AcceptsIpv6) {
  const SocketAddress a = must_parse("[::1]:8080");
  EXPECT_EQ(a.family(), AF_INET6);
  EXPECT_EQ(a.length, sizeof(sockaddr_in6));
  EXPECT_EQ(a.port(), 8080);
  EXPECT_EQ(a.to_string(), "[::1]:8080");
}

TEST(ParseAddress, AcceptsIpv6Wildcard) {
  const SocketAddress a = must_parse("[::]:80");
  EXPECT_EQ(a.family(), AF_INET6);
  EXPECT_EQ(a.port(), 80);
  EXPECT_EQ(a.to_string(), "[::]:80");
}

TEST(ParseAddress, AcceptsPortBounds) {
  EXPECT_EQ(must_parse("10.0.0.1:1").port(), 1);
  EXPECT_EQ(must_parse("10.0.0.1:65535").port(), 65535);
  EXPECT_EQ(must_parse("[::1]:65535").port(), 65535);
}

TEST(ParseAddress, ToStringIsCanonical) {
  EXPECT_EQ(must_parse("[2001:DB8:0:0:0:0:0:1]:443").to_string(), "[2001:db8::1]:443");
  EXPECT_EQ(must_parse("[::ffff:10.1.2.3]:80").to_string(), "[::ffff:10.1.2.3]:80");
  EXPECT_EQ(must_parse("127.0.0.1:0080").to_string(), "127.0.0.1:80");
}

TEST(ParseAddress, ToStringRoundTrips) {
  for (const char* text : {"127.0.0.1:8080", "0.0.0.0:7", "255.255.255.255:65535", "[::1]:8080",
                           "[::]:80", "[2001:db8::1]:443", "[fe80::1:2:3:4]:1"}) {
    const SocketAddress a = must_parse(text);
    EXPECT_EQ(a.to_string(), text);
    const SocketAddress b = must_parse(a.to_string());
    EXPECT_TRUE(a == b) << text;
  }
}

TEST(ParseAddress, RejectsBadInput) {
  const char* bad[] = {
      "",                      // nothing
      "127.0.0.1",             // missing port
      "127.0.0.1:",            // empty port
      "127.0.0.1:0",           // port 0: each worker would get its own ephemeral port
      "127.0.0.1:65536",       // too large
      "127.0.0.1:99999999999", // would overflow a naive parser
      "127.0.0.1:http",        // service names are not looked up
      "127.0.0.1:80x",         // trailing garbage
      "127.0.0.1:80 ",         // trailing space
      "127.0.0.1:+80",         // sign
      "127.0.0.1:-80",
      "127.0.0.1: 80",
      " 127.0.0.1:80",         // leading space
      "127.0.0.1:80:80",
      "1.2.3:80",              // short IPv4
      "256.1.1.1:80",          // octet out of range
      "localhost:80",          // host names
      "example.com:80",
      ":80",                   // no host
      "::1:80",                // IPv6 without brackets
      "::1",
      "[::1]",                 // missing port
      "[::1]:",
      "[::1]:0",
      "[::1]:65536",
      "[::1]80",               // missing colon
      "[::1]:80x",             // trailing garbage
      "[::1]x:80",
      "[::1]:80]",
      "[::1:80",               // unclosed bracket
      "[]:80",
      "[localhost]:80",
      "[1.2.3.4]:80",          // IPv4 in brackets
      "[fe80::1%eth0]:80",     // zone ids are not supported
  };
  for (const char* text : bad) {
    std::string error;
    EXPECT_FALSE(parse_address(text, &error).has_value()) << '"' << text << '"';
    EXPECT_FALSE(error.empty()) << '"' << text << '"';
  }
}

TEST(ParseAddress, RejectsEmbeddedNul) {
  using namespace std::string_view_literals;
  std::string error;
  EXPECT_FALSE(parse_address("127.0.0.1\0junk:80"sv, &error).has_value());
  EXPECT_EQ(error, "address contains a NUL character");
}

TEST(ParseAddress, ErrorMessagesSayWhatIsWrong) {
  std::string error;
  EXPECT_FALSE(parse_address("127.0.0.1", &error));
  EXPECT_EQ(error, "\"127.0.0.1\": missing port (expected IPv4:port or [IPv6]:port)");
  EXPECT_FALSE(parse_address("127.0.0.1:0", &error));
  EXPECT_EQ(error, "\"127.0.0.1:0\": port must be a number from 1 to 65535");
  EXPECT_FALSE(parse_address("::1:80", &error));
  EXPECT_EQ(error, "\"::1:80\": IPv6 addresses must be written in brackets, as [::1]:8080");
  EXPECT_FALSE(parse_address("localhost:80", &error));
  EXPECT_EQ(error, "\"localhost:80\": not an IPv4 address (host names are not accepted)");
  EXPECT_FALSE(parse_address("[::1]", &error));
  EXPECT_EQ(error, "\"[::1]\": missing port (expected [IPv6]:port)");
  EXPECT_FALSE(parse_address("[::1]x:80", &error));
  EXPECT_EQ(error, "\"[::1]x:80\": unexpected text after ']'");
  EXPECT_FALSE(parse_address("[::1:80", &error));
  EXPECT_EQ(error, "\"[::1:80\": missing ']' after IPv6 address");
  EXPECT_FALSE(parse_address("[1.2.3.4]:80", &error));
  EXPECT_EQ(error, "\"[1.2.3.4]:80\": not a valid IPv6 address");
}

TEST(ParseAddress, ErrorPointerIsOptional) {
  EXPECT_FALSE(parse_address("nope").has_value());
  EXPECT_TRUE(parse_address("127.0.0.1:1").has_value());
}

TEST(SocketAddress, EqualityComparesFamilyAddressAndPort) {
  EXPECT_TRUE(must_parse("127.0.0.1:80") == must_parse("127.0.0.1:80"));
  EXPECT_FALSE(must_parse("127.0.0.1:80") == must_parse("127.0.0.1:81"));
  EXPECT_FALSE(must_parse("127.0.0.1:80") == must_parse("127.0.0.2:80"));
  EXPECT_TRUE(must_parse("[::1]:80") == must_parse("[0:0:0:0:0:0:0:1]:80"));
  EXPECT_FALSE(must_parse("[::1]:80") == must_parse("[::2]:80"));
  EXPECT_FALSE(must_parse("[::1]:80") == must_parse("[::1]:81"));
  // Same bytes on the wire, but different sockets to the kernel.
  EXPECT_FALSE(must_parse("[::ffff:127.0.0.1]:80") == must_parse("127.0.0.1:80"));
  EXPECT_FALSE(must_parse("0.0.0.0:80") == must_parse("[::]:80"));
}

TEST(FormatSockaddr, FormatsKernelAddresses) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(9007);
  ASSERT_EQ(inet_pton(AF_INET, "192.0.2.7", &sin.sin_addr), 1);
  EXPECT_EQ(format_sockaddr(reinterpret_cast<const sockaddr*>(&sin)), "192.0.2.7:9007");

  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(443);
  ASSERT_EQ(inet_pton(AF_INET6, "2001:db8::42", &sin6.sin6_addr), 1);
  EXPECT_EQ(format_sockaddr(reinterpret_cast<const sockaddr*>(&sin6)), "[2001:db8::42]:443");
}

TEST(FormatSockaddr, OutputParsesBackToTheSameAddress) {
  const SocketAddress a = must_parse("[2001:db8::42]:443");
  const auto b = parse_address(format_sockaddr(a.sa()));
  ASSERT_TRUE(b.has_value());
  EXPECT_TRUE(a == *b);
}

TEST(FormatSockaddr, NamesUnknownFamilies) {
  sockaddr sa{};
  sa.sa_family = AF_UNIX;
  EXPECT_EQ(format_sockaddr(&sa), "(address family 1)");
  EXPECT_EQ(format_sockaddr(nullptr), "(none)");
}

}  // namespace
}  // namespace preforkd
