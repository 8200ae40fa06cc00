// The client side of the control socket (master/control_protocol.hpp): one
// connection, one request, reply lines read with a deadline. Blocking, with
// poll(2) bounding every wait: the CLI does one thing at a time.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include "master/control_protocol.hpp"

namespace preforkd {

class ControlClient {
 public:
  using Deadline = std::chrono::steady_clock::time_point;
  enum class Read { reply, timeout, closed, error };

  ControlClient() = default;
  ~ControlClient();
  ControlClient(const ControlClient&) = delete;
  ControlClient& operator=(const ControlClient&) = delete;

  // Connects and sends the request; false with *error worded for the operator
  // ("no master answers on ...", "permission denied ...").
  bool request(const std::string& path, control::Command command, std::string* error);
  // The next reply line: `reply` on Read::reply; *error otherwise (closed: the
  // master closed the connection without another line).
  Read next(Deadline deadline, nlohmann::json* reply, std::string* error);

 private:
  int fd_ = -1;
  std::string buffer_;
};

}  // namespace preforkd
