// The config fuzz target: parse_config either returns a config that holds every
// promise the loader makes, or throws ConfigError with a "FILE:" prefix. Any other
// exception (toml++'s own, std::out_of_range, ...) escapes and is a finding.
#include <string>

#include "common/config.hpp"
#include "tests/fuzz/fake_transport.hpp"
#include "tests/fuzz/fuzz_entries.hpp"
#include "tests/fuzz/temp_dir.hpp"

namespace preforkd::fuzz {
namespace {

// The config "lives" in a directory with an html/ subdirectory, like conf/, so
// relative roots resolve and the loader's accept paths are reachable.
struct ConfigDir {
  TempDir dir;
  std::string config_path;
  ConfigDir() : config_path(dir.path() + "/preforkd.toml") { dir.mkdir("html"); }
};

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
    if (c.exec.enabled() != is_exec_transport(l.protocol)) fail("exec transport and [exec] disagree");
    bool http = l.protocol == Protocol::http;
    if (http && (l.root.empty() || l.root[0] != '/')) fail("http root not absolute: " + l.root);
    if (!http && !l.root.empty()) fail("root on a non-http listener");
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
