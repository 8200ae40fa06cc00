// Parsing [exec] and checking the rest of the file against exec mode. Everything a
// program needs that can be checked without starting it is checked here, so that
// `preforkd -t`, the start and a reload fail with FILE:LINE:COL rather than each
// worker failing at run time: the program is looked up in PATH, the directory
// must exist, names must fit the environment they go into.
#include "common/exec_config_loader.hpp"

#include <cstdlib>
#include <string>

namespace preforkd {
namespace {

constexpr std::size_t kMaxArguments = 4096;
constexpr const char* kDefaultSearchPath = "/usr/local/bin:/usr/bin:/bin";  // execvp's, without "."

std::vector<std::string> arguments(const toml::node& node, ConfigReader& reader) {
  const auto* array = node.as_array();
  if (array == nullptr) {
    reader.fail(node.source(), "exec.command",
                "expected an array of strings, the program and its arguments (no shell): "
                "[\"gunicorn\", \"--workers\", \"1\", \"app:app\"]");
  }
  if (array->empty()) reader.fail(node.source(), "exec.command", "must name a program");
  if (array->size() > kMaxArguments)
    reader.fail(node.source(), "exec.command", "more than " + std::to_string(kMaxArguments) + " arguments");
  std::vector<std::string> out;
  for (const toml::node& argument : *array) {
    const auto* s = argument.as_string();
    if (s == nullptr) reader.fail(argument.source(), "exec.command", "expected string (quote numbers: \"1\")");
    if (s->get().find('\0') != std::string::npos)
      reader.fail(argument.source(), "exec.command", "contains a NUL character");
    out.push_back(s->get());
  }
  if (out.front().empty()) reader.fail(array->get(0)->source(), "exec.command", "the program name is empty");
  return out;
}

bool valid_variable_name(std::string_view name) {
  if (name.empty() || (name.front() >= '0' && name.front() <= '9')) return false;
  for (char c : name) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) return false;
  }
  return true;
}

std::vector<std::pair<std::string, std::string>> environment(const toml::node& node, ConfigReader& reader) {
  const toml::table& t = reader.expect_table(node, "exec.environment");
  std::vector<std::pair<std::string, std::string>> out;
  for (auto&& [key, value] : t) {
    const std::string name(key.str());
    const std::string path = "exec.environment." + name;
    if (!valid_variable_name(name))
      reader.fail(key.source(), path, "not a variable name (letters, digits and _, not starting with a digit)");
    for (std::string_view reserved : kExecReservedVariables)
      if (name == reserved) reader.fail(key.source(), path, "set by preforkd for each worker; cannot be configured");
    const auto* s = value.as_string();
    if (s == nullptr) reader.fail(value.source(), path, "expected string (environment values are text: \"1\")");
    if (s->get().find('\0') != std::string::npos) reader.fail(value.source(), path, "contains a NUL character");
    out.emplace_back(name, s->get());
  }
  return out;
}

int signal_setting(const toml::node& node, std::string_view key, bool none_allowed, ConfigReader& reader) {
  const std::string& name = reader.non_empty_string(node, key);
  if (none_allowed && name == "none") return 0;
  if (int signum = exec_signal_from_name(name)) return signum;
  reader.fail(node.source(), key,
              "unknown signal \"" + name + "\" (expected TERM, INT, QUIT, HUP, USR1, USR2, WINCH or KILL" +
                  (none_allowed ? ", or \"none\")" : ")"));
}

std::string search_path(const ExecConfig& exec) {
  for (const auto& [name, value] : exec.environment)
    if (name == "PATH") return value;
  const char* inherited = std::getenv("PATH");
  return inherited != nullptr && *inherited != '\0' ? inherited : kDefaultSearchPath;
}

// A name LISTEN_FDNAMES can carry (sd_listen_fds_with_names(3)): printable ASCII
// without ':', which separates the names, at most 255 characters.
bool valid_fd_name(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  for (char c : name)
    if (c < 0x20 || c > 0x7e || c == ':') return false;
  return true;
}

}  // namespace

ExecConfig parse_exec_section(const toml::node& node, ConfigReader& reader) {
  const toml::table& t = reader.expect_table(node, "exec");
  reader.reject_unknown_keys(t, "exec", {"command", "ready", "start_timeout", "stop_signal", "reopen_signal",
                                         "directory", "environment"});
  ExecConfig out;
  const toml::node* command = t.get("command");
  if (command == nullptr) {
    reader.fail(t.source(), "exec.command",
                "missing required key: the program to run and its arguments, e.g. [\"gunicorn\", \"app:app\"]");
  }
  out.command = arguments(*command, reader);
  if (const toml::node* n = t.get("directory")) out.directory = reader.checked_directory(*n, "exec.directory");
  if (const toml::node* n = t.get("environment")) out.environment = environment(*n, reader);
  if (const toml::node* n = t.get("start_timeout")) out.start_timeout_s = reader.seconds(*n, "exec.start_timeout");
  if (const toml::node* n = t.get("ready")) {
    const auto* s = n->as_string();
    if (s == nullptr || s->get() != "notify") {
      out.ready_after_s = reader.seconds(*n, "exec.ready");
      // Otherwise no worker could ever be ready in time: every start would fail.
      if (out.ready_after_s >= out.start_timeout_s) {
        reader.fail(n->source(), "exec.ready",
                    "must be shorter than exec.start_timeout (" + std::to_string(out.start_timeout_s) +
                        " s), or no worker could be ready in time");
      }
    }
  }
  if (const toml::node* n = t.get("stop_signal")) out.stop_signal = signal_setting(*n, "exec.stop_signal", false, reader);
  if (const toml::node* n = t.get("reopen_signal"))
    out.reopen_signal = signal_setting(*n, "exec.reopen_signal", true, reader);

  // A relative path runs where the program runs (directory), or, without one,
  // next to the config like every other path in the file.
  std::string name = out.command.front();
  const toml::node& name_node = *command->as_array()->get(0);
  if (name.find('/') != std::string::npos && name.front() != '/')
    name = out.directory.empty() ? reader.resolve(name_node, "exec.command", name)
                                 : (out.directory == "/" ? "" : out.directory) + "/" + name;
  std::string error;
  out.program = find_program(name, search_path(out), &error);
  if (out.program.empty()) reader.fail(name_node.source(), "exec.command", error);
  return out;
}

void check_exec_mode(const toml::table& root, const Config& config, ConfigReader& reader) {
  if (!config.exec.enabled()) return;
  constexpr const char* kRecycleInProgram =
      "not available with [exec]: preforkd never sees a program's requests, so it cannot count them; recycle "
      "inside the program (gunicorn --max-requests restarts its worker inside the process preforkd runs)";
  for (const char* key : {"max_requests", "max_requests_jitter"})
    if (const toml::node* n = root.get(key)) reader.fail(n->source(), key, kRecycleInProgram);
  if (const toml::node* n = root.get("max_connections"))
    reader.fail(n->source(), "max_connections",
                "not used with [exec]: it limits the built-in workers; limit connections in the program");
  if (const toml::node* log = root.get("log"); log != nullptr && log->is_table())
    if (const toml::node* n = log->as_table()->get("access_log"))
      reader.fail(n->source(), "log.access_log",
                  "not used with [exec]: the program writes its own access log (its stdout and stderr go to "
                  "the error log)");
  const toml::array* listeners = root.get("listen") ? root.get("listen")->as_array() : nullptr;
  for (std::size_t i = 0; i < config.listeners.size(); ++i) {
    const std::string& name = config.listeners[i].name;
    if (valid_fd_name(name)) continue;
    const toml::node* at = listeners != nullptr && i < listeners->size() ? listeners->get(i) : &root;
    if (const toml::table* t = at->as_table(); t != nullptr && t->get("name") != nullptr) at = t->get("name");
    reader.fail(at->source(), "listen[" + std::to_string(i + 1) + "].name",
                "\"" + name + "\" cannot go into LISTEN_FDNAMES (printable ASCII without ':', at most 255 characters)");
  }
}

}  // namespace preforkd
