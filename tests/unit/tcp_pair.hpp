// A connected loopback TCP pair for tests that drive a real socket.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <utility>

namespace preforkd::test {

// {server side, client side}, both blocking. client_receive_buffer > 0: the client's
// SO_RCVBUF, set before connecting so that its window is small from the start.
inline std::pair<int, int> tcp_pair(int client_receive_buffer = 0) {
  int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  EXPECT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_EQ(::listen(listener, 4), 0);
  EXPECT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  int client = ::socket(AF_INET, SOCK_STREAM, 0);
  if (client_receive_buffer > 0) {
    EXPECT_EQ(::setsockopt(client, SOL_SOCKET, SO_RCVBUF, &client_receive_buffer, sizeof client_receive_buffer), 0);
  }
  EXPECT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  int server = ::accept(listener, nullptr, nullptr);
  ::close(listener);
  return {server, client};
}

}  // namespace preforkd::test
