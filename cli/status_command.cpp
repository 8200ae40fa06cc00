// `preforkd status` reads the same document either way: GET /status on the admin
// endpoint when [admin] is on (so it works the same against a host whose admin
// address is elsewhere), else the control socket's `status` command, which is on
// by default: a fresh install answers without configuring anything.
#include "cli/status_command.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/control_client.hpp"

namespace preforkd {
namespace {

constexpr int kTimeoutMs = 3000;
constexpr std::size_t kMaxResponseBytes = 4 * 1024 * 1024;

bool wait_for(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  int rc;
  do rc = ::poll(&p, 1, timeout_ms);
  while (rc < 0 && errno == EINTR);
  return rc > 0;
}

// One GET on a new connection; the body, or nullopt-like false with *error.
bool http_get(const SocketAddress& address, const std::string& path, std::string* body, std::string* error) {
  int fd = ::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  auto fail = [&](const std::string& what) {
    *error = what;
    ::close(fd);
    return false;
  };
  if (::connect(fd, address.sa(), address.length) != 0 && errno != EINPROGRESS)
    return fail("connect " + address.to_string() + ": " + std::strerror(errno));
  if (!wait_for(fd, POLLOUT, kTimeoutMs)) return fail("connect " + address.to_string() + ": timed out");
  int so_error = 0;
  socklen_t len = sizeof so_error;
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
  if (so_error != 0) return fail("connect " + address.to_string() + ": " + std::strerror(so_error));
  std::string request = "GET " + path + " HTTP/1.1\r\nHost: " + address.to_string() +
                        "\r\nUser-Agent: preforkd-status\r\nConnection: close\r\n\r\n";
  std::size_t sent = 0;
  while (sent < request.size()) {
    if (!wait_for(fd, POLLOUT, kTimeoutMs)) return fail("send: timed out");
    ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR) return fail(std::string("send: ") + std::strerror(errno));
    if (n > 0) sent += static_cast<std::size_t>(n);
  }
  std::string response;
  char buf[16384];
  for (;;) {
    if (!wait_for(fd, POLLIN, kTimeoutMs)) return fail("no answer within " + std::to_string(kTimeoutMs) + " ms");
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return fail(std::string("recv: ") + std::strerror(errno));
    }
    response.append(buf, static_cast<std::size_t>(n));
    if (response.size() > kMaxResponseBytes) return fail("answer larger than 4 MiB");
  }
  ::close(fd);
  auto end_of_head = response.find("\r\n\r\n");
  if (response.rfind("HTTP/1.1 200 ", 0) != 0 || end_of_head == std::string::npos) {
    *error = "unexpected answer: " + response.substr(0, response.find("\r\n"));
    return false;
  }
  *body = response.substr(end_of_head + 4);
  return true;
}

std::string duration(double seconds) {
  char out[32];
  auto s = static_cast<long long>(seconds);
  if (seconds < 60) std::snprintf(out, sizeof out, "%.1fs", seconds);
  else if (s < 3600) std::snprintf(out, sizeof out, "%lldm%02llds", s / 60, s % 60);
  else if (s < 86400) std::snprintf(out, sizeof out, "%lldh%02lldm", s / 3600, s % 3600 / 60);
  else std::snprintf(out, sizeof out, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
  return out;
}

std::string utc(double unix_s) {
  std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char out[32];
  std::strftime(out, sizeof out, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return out;
}

// The status document from the control socket, or false with *error.
bool control_status(const std::string& path, nlohmann::json* doc, std::string* error) {
  ControlClient client;
  if (!client.request(path, control::Command::status, error)) return false;
  nlohmann::json reply;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kTimeoutMs);
  switch (client.next(deadline, &reply, error)) {
    case ControlClient::Read::reply: break;
    case ControlClient::Read::timeout: *error = "no answer within " + std::to_string(kTimeoutMs) + " ms"; return false;
    case ControlClient::Read::closed:
    case ControlClient::Read::error: return false;
  }
  if (reply.value("event", "") != "status") {
    *error = reply.value("event", "") == "error" ? "the master refused: " + reply.value("error", "?")
                                                 : "unexpected reply \"" + reply.value("event", "") + "\"";
    return false;
  }
  *doc = reply["status"];
  return true;
}

}  // namespace

int print_status(const Config& config) {
  using Json = nlohmann::json;
  Json doc;
  std::string error, source;
  if (config.admin.enabled) {
    source = "http://" + config.admin.address.to_string() + "/status";
    std::string body;
    if (!http_get(config.admin.address, "/status", &body, &error)) {
      std::fprintf(stderr, "preforkd: no running master answers on %s: %s\n", config.admin.address.to_string().c_str(),
                   error.c_str());
      return kStatusUnreachable;
    }
    doc = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  } else if (!config.control_socket.empty()) {
    source = config.control_socket;
    if (!control_status(config.control_socket, &doc, &error)) {
      std::fprintf(stderr, "preforkd: %s\n", error.c_str());
      return kStatusUnreachable;
    }
  } else {
    std::fprintf(stderr,
                 "preforkd: status needs the control socket or the admin endpoint, and both are off in %s "
                 "(control_socket = \"\", no [admin]); remove the control_socket line or add an [admin] table, "
                 "and restart\n",
                 config.source_path.c_str());
    return kStatusAdminOff;
  }
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("workers") || !doc["workers"].is_array()) {
    std::fprintf(stderr, "preforkd: %s: not a status document\n", source.c_str());
    return kStatusUnreachable;
  }
  try {
    std::printf("master %lld, preforkd %s, %s, up %s, serving generation %u\n", doc.value("master_pid", 0LL),
                doc.value("version", "?").c_str(), doc.value("phase", "?").c_str(),
                duration(doc.value("uptime_s", 0.0)).c_str(), doc.value("serving_generation", 0u));
    const Json& last = doc["last_reload"];
    std::string last_text = "none";
    if (last.is_object()) {
      last_text = last.value("result", "?") + " (generation " + std::to_string(last.value("generation", 0u)) +
                  ") at " + utc(last.value("time", 0.0));
    }
    std::printf("reloads: %llu ok, %llu failed; last reload: %s\n", doc.value("reloads_ok", 0ULL),
                doc.value("reloads_failed", 0ULL), last_text.c_str());
    std::printf("worker restarts: %llu, crash loops: %llu; totals: %llu accepted, %llu active, %llu requests\n\n",
                doc.value("worker_restarts", 0ULL), doc.value("crash_loops", 0ULL), doc.value("accepted", 0ULL),
                doc.value("active", 0ULL), doc.value("requests", 0ULL));
    std::printf("%-4s %-8s %-4s %-9s %-9s %10s %7s %10s %8s\n", "SLOT", "PID", "GEN", "STATE", "UPTIME", "ACCEPTED",
                "ACTIVE", "REQUESTS", "RESTARTS");
    // A counter a worker does not report (an [exec] program's) is "-", not 0.
    auto counter = [](const Json& w, const char* key) {
      return w.contains(key) ? std::to_string(w.value(key, 0ULL)) : std::string("-");
    };
    for (const Json& w : doc["workers"]) {
      std::printf("%-4d %-8lld %-4u %-9s %-9s %10s %7s %10s %8u", w.value("slot", 0), w.value("pid", 0LL),
                  w.value("generation", 0u), w.value("state", "?").c_str(), duration(w.value("uptime_s", 0.0)).c_str(),
                  counter(w, "accepted").c_str(), counter(w, "active").c_str(), counter(w, "requests").c_str(),
                  w.value("restarts", 0u));
      if (w.value("kind", "") == "exec") {
        const std::string status = w.value("status", "");
        std::printf("  exec%s%s", status.empty() ? "" : ": ", status.c_str());
      }
      std::printf("\n");
    }
  } catch (const Json::exception& e) {
    std::fprintf(stderr, "preforkd: status document: %s\n", e.what());
    return kStatusUnreachable;
  }
  return kStatusOk;
}

}  // namespace preforkd
