// Checks the byte stream an HTTP session wrote, write by write: every response is
// a well-formed HTTP/1.1 status line with a status preforkd can produce and its
// own reason phrase, Server and Date headers, exactly one Content-Length (except
// 304), and a body of exactly that length. Throws FuzzFailure on the first problem.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace preforkd::fuzz {

class ResponseChecker {
 public:
  // One transport write (head and body as passed to StreamTransport::write).
  void on_write(std::string_view head, std::string_view body);
  // Nothing more will be written: the last response must be complete.
  void finish() const;
  std::size_t responses() const { return responses_; }

 private:
  void consume(std::string_view bytes, bool write_start);
  void check_head(std::string_view head);

  std::string head_;           // an incomplete response head
  bool in_body_ = false;
  std::size_t body_length_ = 0;
  std::size_t body_left_ = 0;
  std::size_t responses_ = 0;
};

}  // namespace preforkd::fuzz
