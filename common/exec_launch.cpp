// The trampoline's command line and the program's environment.
#include "common/exec_launch.hpp"

#include <charconv>
#include <string_view>

namespace preforkd {
namespace {

// Everything up to the program's own argv is KEY=VALUE; "--" ends it.
constexpr std::string_view kEndOfLaunch = "--";

template <class Number>
bool parse_number(std::string_view text, Number* out) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc{} && end == text.data() + text.size();
}

std::string_view name_of(std::string_view assignment) { return assignment.substr(0, assignment.find('=')); }

}  // namespace

std::vector<std::string> encode_trampoline_args(const ExecLaunch& launch) {
  std::vector<std::string> args = {
      "preforkd: exec slot " + std::to_string(launch.slot),
      kExecTrampolineFlag,
      "slot=" + std::to_string(launch.slot),
      "generation=" + std::to_string(launch.generation),
      "master=" + std::to_string(launch.master_pid),
      "fds=" + std::to_string(launch.fd_count),
      "user=" + launch.user,
      "uid=" + std::to_string(launch.uid),
      "gid=" + std::to_string(launch.gid),
      "nofile=" + std::to_string(launch.nofile),
      "directory=" + launch.directory,
      "program=" + launch.program,
      std::string(kEndOfLaunch),
  };
  args.insert(args.end(), launch.argv.begin(), launch.argv.end());
  return args;
}

std::optional<ExecLaunch> decode_trampoline_args(std::span<const std::string> args, std::string* error) {
  if (args.size() < 2 || args[1] != kExecTrampolineFlag) {
    *error = std::string("expected ") + kExecTrampolineFlag;
    return std::nullopt;
  }
  ExecLaunch launch;
  std::size_t i = 2;
  std::vector<std::string_view> seen;
  for (; i < args.size() && args[i] != kEndOfLaunch; ++i) {
    const std::string& arg = args[i];
    auto eq = arg.find('=');
    if (eq == std::string::npos) {
      *error = "not KEY=VALUE: \"" + arg + "\"";
      return std::nullopt;
    }
    std::string_view key(arg.data(), eq);
    std::string_view value(arg.data() + eq + 1, arg.size() - eq - 1);
    for (std::string_view k : seen)
      if (k == key) {
        *error = "\"" + std::string(key) + "\" given twice";
        return std::nullopt;
      }
    seen.push_back(key);
    bool ok = true;
    if (key == "slot") ok = parse_number(value, &launch.slot) && launch.slot >= 0;
    else if (key == "generation") ok = parse_number(value, &launch.generation);
    else if (key == "master") ok = parse_number(value, &launch.master_pid) && launch.master_pid > 0;
    else if (key == "fds") ok = parse_number(value, &launch.fd_count) && launch.fd_count >= 0 && launch.fd_count <= 4096;
    else if (key == "user") launch.user = value;
    else if (key == "uid") ok = parse_number(value, &launch.uid);
    else if (key == "gid") ok = parse_number(value, &launch.gid);
    else if (key == "nofile") ok = parse_number(value, &launch.nofile);
    else if (key == "directory") launch.directory = value;
    else if (key == "program") launch.program = value;
    else ok = false;
    if (!ok) {
      *error = "bad \"" + arg + "\"";
      return std::nullopt;
    }
  }
  if (i == args.size()) {
    *error = "no \"--\" before the program's arguments";
    return std::nullopt;
  }
  if (seen.size() != 10) {
    *error = "missing settings (" + std::to_string(seen.size()) + " of 10 given)";
    return std::nullopt;
  }
  launch.argv.assign(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
  if (launch.program.empty() || launch.argv.empty()) {
    *error = "no program to run";
    return std::nullopt;
  }
  return launch;
}

std::vector<std::string> exec_environment(std::span<const std::string> inherited, const ExecConfig& exec,
                                          const ExecWorkerEnvironment& worker) {
  auto replaced = [&](std::string_view name) {
    for (std::string_view reserved : kExecReservedVariables)
      if (name == reserved) return true;
    for (const auto& [configured, value] : exec.environment)
      if (name == configured) return true;
    return false;
  };
  std::vector<std::string> env;
  for (const std::string& assignment : inherited)
    if (assignment.find('=') != std::string::npos && !replaced(name_of(assignment))) env.push_back(assignment);
  for (const auto& [name, value] : exec.environment) env.push_back(name + "=" + value);
  std::string names;
  for (const std::string& name : worker.fd_names) names += (names.empty() ? "" : ":") + name;
  env.push_back("LISTEN_FDS=" + std::to_string(worker.fd_names.size()));
  env.push_back("LISTEN_FDNAMES=" + names);
  env.push_back("NOTIFY_SOCKET=" + worker.notify_socket);
  env.push_back("WATCHDOG_USEC=" + std::to_string(worker.watchdog_usec));
  env.push_back("PREFORKD_SLOT=" + std::to_string(worker.slot));
  env.push_back("PREFORKD_GENERATION=" + std::to_string(worker.generation));
  return env;
}

}  // namespace preforkd
