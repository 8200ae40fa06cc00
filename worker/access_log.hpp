// The HTTP access log, in Combined Log Format:
//
//   REMOTE_ADDR - - [DD/Mon/YYYY:HH:MM:SS +ZZZZ] "METHOD TARGET HTTP/M.N" STATUS BYTES "REFERER" "USER_AGENT"
//
// (Apache's `%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"`, nginx's
// `combined`), local time; BYTES is the response body's length (0 for HEAD, 304 and
// the like, as nginx's $body_bytes_sent); a missing header is "-"; a request too
// malformed to answer with anything but 400 logs "-" as its request line. Quotes,
// backslashes and bytes outside printable ASCII inside quoted fields become \xHH.
//
// One write(2) per line on an O_APPEND file: the workers share the file without
// interleaving, a line is on disk (in the page cache) as soon as the response is
// queued, so a killed worker loses nothing and a reopen needs no flush; a write
// that fails (full disk) drops the line, is logged rate-limited, and never stops
// the serving.
#pragma once

#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

namespace preforkd::access_log {

// The request headers the log needs, collected while parsing.
struct RequestHeaders {
  std::string referer;
  std::string user_agent;
  void reset() {
    referer.clear();
    user_agent.clear();
  }
  // Called for every header; keeps the two the log shows.
  void note(std::string_view field, std::string_view value);
};

struct Entry {
  std::string_view remote;
  std::string_view method;  // empty: the request line is unknown (logged "-")
  std::string_view target;
  int http_major = 1;
  int http_minor = 1;
  int status = 0;
  std::uint64_t body_bytes = 0;
  const RequestHeaders* headers = nullptr;
};

// path "" turns the log off. false with *error if the file cannot be opened.
bool open(const std::string& path, std::string* error);
// Opens the same path again (after logrotate renamed it) and switches to it.
bool reopen(std::string* error);
void close();
namespace detail {
extern int g_fd;  // the log's file, -1 while it is off; defined in access_log.cpp
}
// Inline: the session asks for every header of every request.
inline bool enabled() { return detail::g_fd >= 0; }

// Formats and writes one line.
void write(const Entry& entry);

// One line, with its '\n', as write() would write it at `now` (for tests).
std::string format(const Entry& entry, std::time_t now);

// The status code of a response head "HTTP/1.1 200 OK\r\n...", or 0.
int status_of(std::string_view head);

}  // namespace preforkd::access_log
