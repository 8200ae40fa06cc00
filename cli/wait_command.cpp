// The waiting forms of -s: request, follow the replies, map the outcome to an exit code.
#include "cli/wait_command.hpp"

#include <cstdio>

#include "cli/control_client.hpp"
#include "common/duration.hpp"

namespace preforkd {
namespace {

constexpr double kReloadTimeoutS = 15;
constexpr double kUpgradeTimeoutS = 30;

void print_upgrade_done(const nlohmann::json& finished) {
  long long fresh = finished.value("new_master", 0LL), old = finished.value("old_master", 0LL);
  if (finished.value("handover", "auto") == "manual") {
    std::printf(
        "preforkd: upgraded: new master %lld serves; old master %lld is parked with its sockets "
        "(upgrade_handover = \"manual\")\n"
        "  to complete:  kill -QUIT %lld\n"
        "  to roll back: kill -HUP %lld, then kill -QUIT %lld once the old master's workers serve\n",
        fresh, old, old, old, fresh);
  } else {
    std::printf("preforkd: upgraded: new master %lld serves; old master %lld stops gracefully\n", fresh, old);
  }
}

}  // namespace

int wait_for_action(const std::string& action, const Config& config, const std::string& timeout) {
  control::Command command;
  if (action == "reload") command = control::Command::reload;
  else if (action == "upgrade") command = control::Command::upgrade;
  else {
    std::fprintf(stderr, "preforkd: --wait works with -s reload and -s upgrade, not \"%s\"\n", action.c_str());
    return kWaitUsage;
  }
  double seconds = command == control::Command::reload ? kReloadTimeoutS : kUpgradeTimeoutS;
  if (!timeout.empty()) {
    std::string error;
    auto parsed = parse_duration(timeout, &error);
    if (!parsed || !(*parsed > 0) || *parsed > 24 * 3600) {
      std::fprintf(stderr, "preforkd: --timeout \"%s\": %s\n", timeout.c_str(),
                   parsed ? "must be more than 0 and at most 24h" : error.c_str());
      return kWaitUsage;
    }
    seconds = *parsed;
  }
  // Nothing is sent: the operator must know that nothing happened.
  if (config.control_socket.empty()) {
    std::fprintf(stderr,
                 "preforkd: --wait needs the control socket, which is off in %s (control_socket = \"\"); nothing was "
                 "sent. Without --wait, -s %s signals the master without waiting\n",
                 config.source_path.c_str(), action.c_str());
    return kWaitNoControlSocket;
  }
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(static_cast<long long>(seconds * 1000));
  ControlClient client;
  std::string error;
  if (!client.request(config.control_socket, command, &error)) {
    std::fprintf(stderr, "preforkd: %s; nothing was sent\n", error.c_str());
    return kWaitFailed;
  }
  bool queued = false;
  for (;;) {
    nlohmann::json reply;
    switch (client.next(deadline, &reply, &error)) {
      case ControlClient::Read::reply: break;
      case ControlClient::Read::timeout:
        std::fprintf(stderr,
                     "preforkd: no outcome within %gs; the %s goes on in the master (see its log, or preforkd status)\n",
                     seconds, action.c_str());
        return kWaitTimedOut;
      case ControlClient::Read::closed:
        std::fprintf(stderr, "preforkd: %s before the %s finished (did it exit?)\n", error.c_str(), action.c_str());
        return kWaitFailed;
      case ControlClient::Read::error:
        std::fprintf(stderr, "preforkd: control socket %s: %s\n", config.control_socket.c_str(), error.c_str());
        return kWaitFailed;
    }
    const std::string event = reply.value("event", "");
    if (event == "error") {
      std::fprintf(stderr, "preforkd: the master refused the request: %s\n", reply.value("error", "?").c_str());
      return kWaitFailed;
    }
    if (event == "accepted") {
      queued = reply.value("queued", false);
      continue;
    }
    if (event != "finished") continue;  // "started", and what later versions may add
    if (!reply.value("ok", false)) {
      std::fprintf(stderr, "preforkd: %s failed: %s\n", action.c_str(), reply.value("error", "?").c_str());
      return kWaitFailed;
    }
    if (command == control::Command::upgrade) {
      print_upgrade_done(reply);
    } else {
      std::printf("preforkd: reloaded: generation %u serves%s\n", reply.value("generation", 0u),
                  queued ? " (the request waited for the reload in progress, then this one ran)" : "");
    }
    return kWaitOk;
  }
}

}  // namespace preforkd
