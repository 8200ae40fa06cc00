// ResponseChecker: a strict reader of what preforkd's HTTP session may send.
#include "tests/fuzz/response_checker.hpp"

#include <charconv>

#include "tests/fuzz/fake_transport.hpp"

namespace preforkd::fuzz {
namespace {

constexpr std::size_t kMaxHead = 16 * 1024;

// The statuses HttpSession produces, with the reason phrase it must use.
std::string_view expected_reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 412: return "Precondition Failed";
    case 416: return "Range Not Satisfiable";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
  }
  return {};
}

bool iequals_prefix(std::string_view line, std::string_view name) {
  if (line.size() < name.size()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    char c = line[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != name[i]) return false;
  }
  return true;
}

}  // namespace

void ResponseChecker::on_write(std::string_view head, std::string_view body) {
  consume(head, /*write_start=*/true);
  consume(body, /*write_start=*/head.empty());
}

void ResponseChecker::consume(std::string_view bytes, bool write_start) {
  while (!bytes.empty()) {
    if (in_body_) {
      // A HEAD response announces a Content-Length and sends no body: the next
      // response then starts a new write before any body byte arrived. (No file in
      // the fuzz docroot and no error page starts with "HTTP/".)
      if (write_start && body_left_ == body_length_ && bytes.starts_with("HTTP/")) {
        in_body_ = false;
        continue;
      }
      std::size_t n = std::min(body_left_, bytes.size());
      body_left_ -= n;
      bytes.remove_prefix(n);
      write_start = false;
      if (body_left_ == 0) in_body_ = false;
      continue;
    }
    std::size_t before = head_.size();
    head_.append(bytes);
    std::size_t end = head_.find("\r\n\r\n");
    if (end == std::string::npos) {
      if (head_.size() > kMaxHead) throw FuzzFailure("response head without end: " + head_.substr(0, 200));
      return;
    }
    std::size_t head_size = end + 4;
    bytes.remove_prefix(head_size - before);
    std::string head = head_.substr(0, head_size);
    head_.clear();
    check_head(head);
    write_start = false;
  }
}

void ResponseChecker::check_head(std::string_view head) {
  ++responses_;
  auto fail = [&](const std::string& why) { throw FuzzFailure(why + " in response head:\n" + std::string(head)); };
  if (!head.starts_with("HTTP/1.1 ")) fail("no \"HTTP/1.1 \" at the start");
  std::string_view rest = head.substr(9);
  int status = 0;
  auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + std::min<std::size_t>(3, rest.size()), status);
  if (ec != std::errc() || ptr != rest.data() + 3) fail("no 3-digit status");
  std::string_view reason = expected_reason(status);
  if (reason.empty()) fail("unexpected status " + std::to_string(status));
  std::string status_line_rest = " " + std::string(reason) + "\r\n";
  if (rest.substr(3, status_line_rest.size()) != status_line_rest) fail("wrong reason phrase");

  // Headers: one per line, "Name: value", no bare CR/LF inside.
  std::string_view headers = head.substr(9 + 3 + status_line_rest.size());
  headers.remove_suffix(2);  // the blank line's CRLF
  int content_lengths = 0, servers = 0, dates = 0;
  std::size_t content_length = 0;
  while (!headers.empty()) {
    std::size_t eol = headers.find("\r\n");
    if (eol == std::string_view::npos) fail("header line without CRLF");
    std::string_view line = headers.substr(0, eol);
    headers.remove_prefix(eol + 2);
    std::size_t colon = line.find(": ");
    if (colon == std::string_view::npos || colon == 0) fail("malformed header line");
    if (line.find_first_of("\r\n") != std::string_view::npos) fail("CR or LF inside a header line");
    if (iequals_prefix(line, "content-length:")) {
      ++content_lengths;
      std::string_view value = line.substr(colon + 2);
      auto [p, e] = std::from_chars(value.data(), value.data() + value.size(), content_length);
      if (e != std::errc() || p != value.data() + value.size()) fail("bad Content-Length");
    }
    if (iequals_prefix(line, "server:")) ++servers;
    if (iequals_prefix(line, "date:")) ++dates;
  }
  if (servers != 1 || dates != 1) fail("Server and Date must appear once each");
  if (status == 304) {
    if (content_lengths != 0) fail("304 with Content-Length");
    return;
  }
  if (content_lengths != 1) fail("Content-Length must appear exactly once");
  body_length_ = body_left_ = content_length;
  in_body_ = content_length > 0;
}

void ResponseChecker::finish() const {
  if (!head_.empty()) throw FuzzFailure("incomplete response head at the end: " + head_.substr(0, 200));
  // A body still wholly missing is the last response to a HEAD request.
  if (in_body_ && body_left_ != body_length_)
    throw FuzzFailure("response body truncated: " + std::to_string(body_length_ - body_left_) + " of " +
                      std::to_string(body_length_) + " bytes sent");
}

}  // namespace preforkd::fuzz
