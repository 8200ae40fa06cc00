// The value types of the HTTP layer's API: bodies, header lines, reason phrases,
// and the default error page.
#include <unistd.h>

#include <stdexcept>
#include <string>
#include <utility>

#include <preforkd/http.hpp>

namespace preforkd::http {

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
  }
  return "Unknown";
}

Body Body::bytes(std::string bytes) {
  Body b;
  b.length_ = bytes.size();
  b.bytes_ = std::move(bytes);
  return b;
}

Body Body::shared(std::shared_ptr<const std::string> bytes) {
  std::size_t size = bytes ? bytes->size() : 0;
  return shared(std::move(bytes), 0, size);
}

Body Body::shared(std::shared_ptr<const std::string> bytes, std::size_t offset, std::size_t length) {
  std::size_t size = bytes ? bytes->size() : 0;
  if (offset > size || length > size - offset) throw std::invalid_argument("Body::shared: range outside the bytes");
  Body b;
  b.kind_ = Kind::shared;
  b.shared_ = std::move(bytes);
  b.offset_ = offset;
  b.length_ = length;
  return b;
}

Body Body::file(int fd, std::uint64_t offset, std::uint64_t length) {
  Body b;
  b.kind_ = Kind::file;
  b.fd_ = fd;
  b.offset_ = offset;
  b.length_ = length;
  return b;
}

Body Body::length_only(std::uint64_t length) {
  Body b;
  b.kind_ = Kind::length_only;
  b.length_ = length;
  return b;
}

Body::Body(Body&& other) noexcept
    : kind_(other.kind_),
      bytes_(std::move(other.bytes_)),
      shared_(std::move(other.shared_)),
      fd_(std::exchange(other.fd_, -1)),
      offset_(other.offset_),
      length_(other.length_) {}

Body& Body::operator=(Body&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    kind_ = other.kind_;
    bytes_ = std::move(other.bytes_);
    shared_ = std::move(other.shared_);
    fd_ = std::exchange(other.fd_, -1);
    offset_ = other.offset_;
    length_ = other.length_;
  }
  return *this;
}

Body::~Body() {
  if (fd_ >= 0) ::close(fd_);
}

int Body::release_fd() noexcept { return std::exchange(fd_, -1); }

namespace {

bool is_token_char(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

}  // namespace

Headers& Headers::add(std::string_view name, std::string_view value) {
  if (name.empty()) throw std::invalid_argument("header name is empty");
  for (char c : name)
    if (!is_token_char(c)) throw std::invalid_argument("header name \"" + std::string(name) + "\" is not a token");
  for (char c : value)
    if (c == '\r' || c == '\n' || c == '\0')
      throw std::invalid_argument("header " + std::string(name) + ": CR, LF or NUL in the value");
  text_.append(name);
  text_ += ": ";
  text_.append(value);
  text_ += "\r\n";
  return *this;
}

Handler::~Handler() = default;

bool Handler::wants_body(const Request&) { return false; }

Response Handler::error_response(int status) {
  const std::string title = std::to_string(status) + " " + std::string(reason_phrase(status));
  Response r;
  r.status = status;
  r.headers.add("Content-Type", "text/html; charset=utf-8");
  r.body = Body::bytes("<html><head><title>" + title + "</title></head><body><h1>" + title + "</h1></body></html>\n");
  return r;
}

}  // namespace preforkd::http
