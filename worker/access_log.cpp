// The access log's file and line format; see access_log.hpp for the choices.
#include "worker/access_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "common/log.hpp"
#include "worker/ascii.hpp"

namespace preforkd::access_log {

int detail::g_fd = -1;

namespace {

using detail::g_fd;

// While writes fail, at most one error line per this interval.
constexpr std::chrono::seconds kFailureLogInterval{60};

std::string g_path;

// Failure accounting for the rate-limited error line.
std::uint64_t g_dropped = 0;           // lines dropped since the last report
bool g_failing = false;
std::chrono::steady_clock::time_point g_last_report{};

// nginx's escaping: the line stays one line and its quotes stay balanced.
void append_escaped(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : text) {
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
}

void append_quoted_or_dash(std::string& out, std::string_view text) {
  out += '"';
  if (text.empty()) out += '-';
  else append_escaped(out, text);
  out += '"';
}

// "[10/Oct/2000:13:55:36 -0700]", formatted once a second.
const std::string& local_time(std::time_t now) {
  static std::time_t cached_at = -1;
  static std::string cached;
  if (now != cached_at) {
    tm local{};
    localtime_r(&now, &local);
    char buf[64];
    std::size_t n = std::strftime(buf, sizeof buf, "[%d/%b/%Y:%H:%M:%S %z]", &local);
    cached.assign(buf, n);
    cached_at = now;
  }
  return cached;
}

int open_file(const std::string& path, std::string* error) {
  std::string why;
  int fd = log::open_file(path, &why);
  if (fd < 0) *error = "open access log " + why;
  return fd;
}

void note_failure(int err, std::size_t written, std::size_t len) {
  ++g_dropped;
  auto now = std::chrono::steady_clock::now();
  if (g_failing && now - g_last_report < kFailureLogInterval) return;
  g_failing = true;
  g_last_report = now;
  const char* why = err != 0 ? std::strerror(err) : "short write";
  PF_LOG_ERROR("access log %s: write: %s (wrote %zu of %zu bytes); %llu line(s) dropped, serving continues%s",
               g_path.c_str(), why, written, len, static_cast<unsigned long long>(g_dropped),
               " (reported at most once a minute)");
  g_dropped = 0;
}

}  // namespace

void RequestHeaders::note(std::string_view field, std::string_view value) {
  if (iequals(field, "referer")) referer.assign(value);
  else if (iequals(field, "user-agent")) user_agent.assign(value);
}

bool open(const std::string& path, std::string* error) {
  close();
  if (path.empty()) return true;
  int fd = open_file(path, error);
  if (fd < 0) return false;
  g_fd = fd;
  g_path = path;
  return true;
}

bool reopen(std::string* error) {
  if (g_fd < 0) return true;
  int fd = open_file(g_path, error);
  if (fd < 0) return false;  // keep writing to the old file rather than nowhere
  ::close(g_fd);
  g_fd = fd;
  return true;
}

void close() {
  if (g_fd >= 0) ::close(g_fd);
  g_fd = -1;
  g_path.clear();
}

int status_of(std::string_view head) {
  // "HTTP/1.1 " is 9 bytes, then three digits.
  if (head.size() < 12) return 0;
  int status = 0;
  for (std::size_t i = 9; i < 12; ++i) {
    if (head[i] < '0' || head[i] > '9') return 0;
    status = status * 10 + (head[i] - '0');
  }
  return status;
}

std::string format(const Entry& entry, std::time_t now) {
  std::string line;
  line.reserve(256);
  line += entry.remote.empty() ? std::string_view("-") : entry.remote;
  line += " - - ";
  line += local_time(now);
  line += " \"";
  if (entry.method.empty()) {
    line += '-';
  } else {
    append_escaped(line, entry.method);
    line += ' ';
    append_escaped(line, entry.target);
    line += " HTTP/";
    line += std::to_string(entry.http_major);
    line += '.';
    line += std::to_string(entry.http_minor);
  }
  line += "\" ";
  line += std::to_string(entry.status);
  line += ' ';
  line += std::to_string(entry.body_bytes);
  line += ' ';
  append_quoted_or_dash(line, entry.headers ? std::string_view(entry.headers->referer) : std::string_view());
  line += ' ';
  append_quoted_or_dash(line, entry.headers ? std::string_view(entry.headers->user_agent) : std::string_view());
  line += '\n';
  return line;
}

void write(const Entry& entry) {
  if (g_fd < 0) return;
  std::string line = format(entry, std::time(nullptr));
  ssize_t rc;
  do {
    rc = ::write(g_fd, line.data(), line.size());
  } while (rc < 0 && errno == EINTR);
  if (rc == static_cast<ssize_t>(line.size())) {
    if (g_failing) {
      PF_LOG_NOTICE("access log %s: writing again (%llu more line(s) were dropped)", g_path.c_str(),
                    static_cast<unsigned long long>(g_dropped));
      g_failing = false;
      g_dropped = 0;
    }
    return;
  }
  note_failure(rc < 0 ? errno : 0, rc < 0 ? 0 : static_cast<std::size_t>(rc), line.size());
}

}  // namespace preforkd::access_log
