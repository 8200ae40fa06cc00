// The config fuzz target: parse_config either returns a config that holds every
// promise the loader makes, or throws ConfigError with a "FILE:" prefix. Any other
// exception (toml++'s own, std::out_of_range, ...) escapes and is a finding.
#include <string>

#include "common/config.hpp"
#include "common/protocol_registry.hpp"
#include "tests/fuzz/fake_transport.hpp"
#include "tests/fuzz/fuzz_entries.hpp"
#include "tests/fuzz/temp_dir.hpp"
#include "worker/builtin_protocols.hpp"

namespace preforkd::fuzz {
namespace {

// The config "lives" in a directory with an html/ subdirectory, like conf/, so
// relative roots resolve and the loader's accept paths are reachable.
struct ConfigDir {
  TempDir dir;
  std::string config_path;
  ConfigDir() : config_path(dir.path() + "/preforkd.toml") { dir.mkdir("html"); }
};

// A declared key's loaded value keeps its declaration: type, range, absolute paths.
template <class Fail>
void check_key(const KeySpec& spec, const KeyValue& value, Fail fail) {
  if (value.key != spec.name) fail("key " + value.key + " where " + spec.name + " was declared");
  const KeyData& v = value.value;
  switch (spec.type) {
    case KeyType::boolean:
      if (!std::holds_alternative<bool>(v)) fail(spec.name + ": not a boolean");
      break;
    case KeyType::integer:
      if (!std::holds_alternative<std::int64_t>(v)) fail(spec.name + ": not an integer");
      if (std::get<std::int64_t>(v) < spec.min || std::get<std::int64_t>(v) > spec.max) fail(spec.name + ": out of range");
      break;
    case KeyType::duration:
      if (!std::holds_alternative<double>(v)) fail(spec.name + ": not a duration");
      if (!(std::get<double>(v) > 0 && std::get<double>(v) <= 3600)) fail(spec.name + ": duration out of range");
      break;
    case KeyType::string:
      if (spec.check && !spec.check(std::get<std::string>(v)).empty()) fail(spec.name + ": fails its check");
      break;
    case KeyType::string_list:
      if (!std::holds_alternative<std::vector<std::string>>(v)) fail(spec.name + ": not a list");
      for (const std::string& s : std::get<std::vector<std::string>>(v))
        if (s.empty() || (spec.check && !spec.check(s).empty())) fail(spec.name + ": an element fails its check");
      break;
    case KeyType::string_table:
      if (!std::holds_alternative<StringTable>(v)) fail(spec.name + ": not a table");
      for (const auto& [k, s] : std::get<StringTable>(v))
        if (k < spec.min || k > spec.max || s.empty() || (spec.check && !spec.check(s).empty()))
          fail(spec.name + ": an entry fails its check");
      break;
    case KeyType::path:
    case KeyType::directory:
      if (!std::holds_alternative<std::string>(v) || std::get<std::string>(v).empty() ||
          std::get<std::string>(v)[0] != '/')
        fail(spec.name + ": path not absolute");
      break;
  }
}

void check_accepted(const Config& c) {
  auto fail = [](const std::string& why) { throw FuzzFailure("accepted config breaks a promise: " + why); };
  if (c.workers < 1 || c.workers > 1024) fail("workers " + std::to_string(c.workers));
  if (c.pid_file.empty() || c.pid_file[0] != '/') fail("pid_file not absolute: " + c.pid_file);
  if (!(c.graceful_timeout_s > 0 && c.graceful_timeout_s <= 3600)) fail("graceful_timeout out of range");
  if (!(c.worker_timeout_s > 0 && c.worker_timeout_s <= 3600)) fail("worker_timeout out of range");
  if (c.log.error_log != "stderr" && (c.log.error_log.empty() || c.log.error_log[0] != '/'))
    fail("error_log neither stderr nor absolute: " + c.log.error_log);
  if (c.listeners.empty()) fail("no listeners");
  if (c.exec.enabled() && (c.exec.program.empty() || c.exec.program[0] != '/'))
    fail("exec program not found to an absolute path: " + c.exec.program);
  if (c.exec.enabled() && c.max_requests != 0) fail("max_requests with [exec]");
  for (std::size_t i = 0; i < c.listeners.size(); ++i) {
    const ListenerConfig& l = c.listeners[i];
    if (l.name.empty()) fail("listener without a name");
    if (l.backlog < 1 || l.backlog > 65535) fail("backlog " + std::to_string(l.backlog));
    if (c.exec.enabled()) {
      // A transport for the program, never a registered protocol's schema.
      const ProtocolSpec* transport = exec_transport(l.protocol.name);
      if (transport == nullptr || transport->transport != l.protocol.transport || !l.keys.empty())
        fail("listener " + l.name + " is not an exec transport with [exec]");
    } else {
      const ProtocolSpec* spec = process_registry().find(l.protocol.name);
      if (spec == nullptr) fail("unregistered protocol " + l.protocol.name);
      if (spec->transport != l.protocol.transport) fail("transport of " + l.protocol.name);
      if (l.keys.size() != spec->keys.size()) fail("not every declared key of " + l.protocol.name + " has a value");
      for (std::size_t k = 0; k < spec->keys.size(); ++k) check_key(spec->keys[k], l.keys[k], fail);
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (c.listeners[j].address.to_string() == l.address.to_string() &&
          is_datagram(c.listeners[j].protocol) == is_datagram(l.protocol))
        fail("two listeners on " + l.address.to_string());
    }
  }
}

}  // namespace

void config_one_input(const std::uint8_t* data, std::size_t size) {
  static ConfigDir where;
  ensure_builtin_protocols();
  std::string_view text(reinterpret_cast<const char*>(data), size);
  Config config;
  try {
    config = parse_config(text, where.config_path);
  } catch (const ConfigError& e) {
    std::string_view message = e.what();
    if (!message.starts_with(where.config_path + ":"))
      throw FuzzFailure("ConfigError without the FILE: prefix: " + std::string(message));
    return;
  }
  check_accepted(config);
}

}  // namespace preforkd::fuzz
