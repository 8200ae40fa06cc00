#include "common/config.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <toml++/toml.h>

#include "common/duration.hpp"
#include "common/exec_config_loader.hpp"
#include "common/user_lookup.hpp"

namespace preforkd {

const KeyData* ListenerConfig::key(std::string_view wanted) const {
  for (const KeyValue& k : keys)
    if (k.key == wanted) return &k.value;
  return nullptr;
}

std::string_view handover_name(UpgradeHandover handover) {
  return handover == UpgradeHandover::manual ? "manual" : "auto";
}

std::string default_control_socket(const std::string& pid_file) {
  std::string_view base(pid_file);
  if (base.ends_with(".pid")) base.remove_suffix(4);
  return std::string(base) + ".sock";
}

std::string read_config_text(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw ConfigError(path + ": cannot read: " + std::strerror(errno));
  std::string text;
  char buf[16384];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      text.append(buf, static_cast<size_t>(n));
      if (text.size() > kMaxConfigBytes) {
        ::close(fd);
        throw ConfigError(path + ": larger than " + std::to_string(kMaxConfigBytes / 1024) +
                          " KiB; workers receive the config over their IPC channel, which bounds messages");
      }
    } else if (n == 0) {
      break;
    } else if (errno != EINTR) {
      // Opening a directory succeeds; reading it is where EISDIR shows up.
      const int saved = errno;
      ::close(fd);
      throw ConfigError(path + ": cannot read: " + std::strerror(saved));
    }
  }
  ::close(fd);
  return text;
}

Config load_config_file(const std::string& path) {
  return parse_config(read_config_text(path), path);
}

namespace {

constexpr int kMaxWorkers = 1024;
constexpr double kMaxTimeoutSeconds = 3600.0;
// The kernel's ceiling for fs.nr_open; a value above the running system's
// fs.nr_open fails in setrlimit, which the worker logs.
constexpr std::int64_t kMaxNofile = 1 << 30;
constexpr std::int64_t kMaxRequests = 1'000'000'000'000;
constexpr std::string_view kDefaultPidFile = "/run/preforkd.pid";

std::string key_path(std::string_view prefix, std::string_view key) {
  if (prefix.empty()) return std::string(key);
  return std::string(prefix) + "." + std::string(key);
}

std::string listener_path(size_t index) { return "listen[" + std::to_string(index + 1) + "]"; }

bool same_transport(const ProtocolRef& a, const ProtocolRef& b) { return a.transport == b.transport; }

template <class List>
bool contains(const List& list, std::string_view key) {
  return std::find(std::begin(list), std::end(list), key) != std::end(list);
}

int online_cpus() {
  const long n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1) return 1;
  return n > kMaxWorkers ? kMaxWorkers : static_cast<int>(n);
}

// Directory that relative paths in the file are taken against, made absolute now
// because the master may chdir("/") before workers look at these paths.
std::string base_directory(const std::string& source_path) {
  const auto slash = source_path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : source_path.substr(0, slash);
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (dir.empty()) dir = "/";  // "/preforkd.toml"
  if (dir.front() == '/') return dir;
  std::unique_ptr<char, decltype(&std::free)> cwd(getcwd(nullptr, 0), &std::free);
  if (!cwd) return {};
  const std::string base(cwd.get());
  if (dir == ".") return base;
  return (base == "/" ? "" : base) + "/" + dir;
}

// Validates one parsed document. Every check throws at the first problem so the
// operator sees exactly one precise message, as from a compiler.
class Loader {
 public:
  Loader(const std::string& source_path, const ProtocolRegistry& protocols)
      : source_path_(source_path), protocols_(protocols) {}

  Config load(const toml::table& root) {
    Config config;
    config.source_path = source_path_;
    reject_unknown_keys(root, "", {"workers", "pid_file", "graceful_timeout", "worker_timeout", "max_connections",
                                   "log", "listen", "user", "group", "worker_rlimit_nofile", "max_requests",
                                   "max_requests_jitter", "admin", "control_socket",
                                   "upgrade_handover", "exec", "prespawn", "worker_cpu_affinity"});
    if (const toml::node* n = root.get("workers")) config.workers = worker_count(*n);
    config.pid_file = std::string(kDefaultPidFile);
    if (const toml::node* n = root.get("pid_file")) {
      config.pid_file = resolve(*n, "pid_file", non_empty_string(*n, "pid_file"));
    }
    // A pid file deep enough for the socket's name not to fit leaves the socket
    // off (the master says so) rather than failing a config that does not name it.
    config.control_socket = default_control_socket(config.pid_file);
    if (config.control_socket.size() > kMaxControlSocketPath) config.control_socket.clear();
    if (const toml::node* n = root.get("control_socket")) config.control_socket = control_socket(*n);
    if (const toml::node* n = root.get("upgrade_handover")) config.upgrade_handover = handover(*n);
    if (const toml::node* n = root.get("prespawn")) config.prespawn = expect_bool(*n, "prespawn");
    if (const toml::node* n = root.get("worker_cpu_affinity")) config.worker_cpu_affinity = cpu_affinity(*n);
    if (const toml::node* n = root.get("graceful_timeout")) {
      config.graceful_timeout_s = seconds(*n, "graceful_timeout");
    }
    if (const toml::node* n = root.get("worker_timeout")) config.worker_timeout_s = seconds(*n, "worker_timeout");
    if (const toml::node* n = root.get("max_connections")) {
      config.max_connections = static_cast<int>(expect_integer(*n, "max_connections", 1, 1'000'000));
    }
    if (const toml::node* n = root.get("log")) config.log = log_settings(*n);
    config.run_as = run_as(root);
    if (const toml::node* n = root.get("worker_rlimit_nofile"))
      config.worker_rlimit_nofile = static_cast<std::uint64_t>(expect_integer(*n, "worker_rlimit_nofile", 1, kMaxNofile));
    if (const toml::node* n = root.get("max_requests"))
      config.max_requests = static_cast<std::uint64_t>(expect_integer(*n, "max_requests", 0, kMaxRequests));
    if (const toml::node* n = root.get("max_requests_jitter")) {
      config.max_requests_jitter =
          static_cast<std::uint64_t>(expect_integer(*n, "max_requests_jitter", 0, kMaxRequests));
      if (config.max_requests == 0 && config.max_requests_jitter > 0)
        fail(n->source(), "max_requests_jitter", "needs max_requests > 0 (jitter alone recycles nothing)");
    }
    if (const toml::node* n = root.get("admin")) config.admin = admin_settings(*n);
    // Before the listeners: with [exec] their protocols are transports.
    if (const toml::node* n = root.get("exec")) config.exec = exec_settings(*n);
    config.listeners = listeners(root);
    ExecReader exec_reader(*this);
    check_exec_mode(root, config, exec_reader);
    if (const toml::node* n = root.get("admin"); n != nullptr && config.admin.enabled) {
      for (size_t j = 0; j < config.listeners.size(); ++j) {
        if (!is_datagram(config.listeners[j].protocol) && config.listeners[j].address == config.admin.address) {
          const toml::node* at = n->as_table() ? n->as_table()->get("address") : nullptr;
          fail((at ? at : n)->source(), "admin.address",
               "duplicate address " + config.admin.address.to_string() + " (also used by " + listener_path(j) + ")");
        }
      }
    }
    return config;
  }

 private:
  [[noreturn]] void fail(const toml::source_region& at, std::string_view key,
                         std::string_view message) const {
    throw ConfigError(source_path_ + ":" + std::to_string(at.begin.line) + ":" +
                      std::to_string(at.begin.column) + ": " + std::string(key) + ": " +
                      std::string(message));
  }

  void reject_unknown_keys(const toml::table& table, std::string_view prefix,
                           std::initializer_list<std::string_view> known) const {
    reject_keys(table, prefix, [&](std::string_view key) { return contains(known, key); }, "unknown key");
  }

  // Tables iterate in key order; report the key that comes first in the file, at
  // the key itself, since that is the text the operator has to fix.
  // An unknown key is shown at the key (the text to fix is its name); a known key
  // in the wrong place at its value, as every other complaint about a value.
  template <class Allowed>
  void reject_keys(const toml::table& table, std::string_view prefix, Allowed allowed, std::string_view why,
                   bool at_value = false) const {
    const toml::key* first = nullptr;
    const toml::node* first_value = nullptr;
    for (auto&& [key, value] : table) {
      if (!allowed(key.str()) && (first == nullptr || key.source().begin < first->source().begin)) {
        first = &key;
        first_value = &value;
      }
    }
    if (first != nullptr) fail(at_value ? first_value->source() : first->source(), key_path(prefix, first->str()), why);
  }

  const std::string& expect_string(const toml::node& node, std::string_view key) const {
    if (const auto* s = node.as_string()) return s->get();
    fail(node.source(), key, "expected string");
  }

  const std::string& non_empty_string(const toml::node& node, std::string_view key) const {
    const std::string& s = expect_string(node, key);
    if (s.empty()) fail(node.source(), key, "must not be empty");
    return s;
  }

  std::int64_t expect_integer(const toml::node& node, std::string_view key, std::int64_t min,
                       std::int64_t max) const {
    const auto* i = node.as_integer();
    if (i == nullptr) fail(node.source(), key, "expected integer");
    if (i->get() < min || i->get() > max) {
      fail(node.source(), key,
           "must be between " + std::to_string(min) + " and " + std::to_string(max));
    }
    return i->get();
  }

  bool expect_bool(const toml::node& node, std::string_view key) const {
    if (const auto* b = node.as_boolean()) return b->get();
    fail(node.source(), key, "expected true or false");
  }

  const toml::table& expect_table(const toml::node& node, std::string_view key) const {
    if (const auto* t = node.as_table()) return *t;
    fail(node.source(), key, "expected table");
  }

  // Relative paths name files next to the config, wherever the server was started.
  std::string resolve(const toml::node& node, std::string_view key, std::string_view path) {
    if (path.front() == '/') return std::string(path);
    if (base_dir_.empty()) base_dir_ = base_directory(source_path_);
    if (base_dir_.empty()) {
      fail(node.source(), key,
           std::string("cannot resolve relative path: getcwd: ") + std::strerror(errno));
    }
    while (path.starts_with("./")) path.remove_prefix(2);
    return (base_dir_ == "/" ? "" : base_dir_) + "/" + std::string(path);
  }

  std::string control_socket(const toml::node& node) {
    const std::string& path = expect_string(node, "control_socket");
    if (path.empty()) return {};  // written "" turns it off
    std::string resolved = resolve(node, "control_socket", path);
    if (resolved.size() > kMaxControlSocketPath)
      fail(node.source(), "control_socket",
           "\"" + resolved + "\": longer than " + std::to_string(kMaxControlSocketPath) +
               " bytes, the limit of a Unix socket path");
    return resolved;
  }

  UpgradeHandover handover(const toml::node& node) const {
    const std::string& name = expect_string(node, "upgrade_handover");
    if (name == "auto") return UpgradeHandover::automatic;
    if (name == "manual") return UpgradeHandover::manual;
    fail(node.source(), "upgrade_handover", "unknown value \"" + name + "\" (expected \"auto\" or \"manual\")");
  }

  // nginx's `worker_cpu_affinity auto`; its explicit bit masks are not offered.
  bool cpu_affinity(const toml::node& node) const {
    const std::string& value = expect_string(node, "worker_cpu_affinity");
    if (value == "auto") return true;
    if (value == "off") return false;
    fail(node.source(), "worker_cpu_affinity", "unknown value \"" + value + "\" (expected \"auto\" or \"off\")");
  }

  int worker_count(const toml::node& node) const {
    if (const auto* s = node.as_string(); s != nullptr && s->get() == "auto") return online_cpus();
    if (node.is_integer()) return static_cast<int>(expect_integer(node, "workers", 1, kMaxWorkers));
    fail(node.source(), "workers", "expected integer or \"auto\"");
  }

  // A duration: a number of seconds (integer or fractional) or a string with units
  // ("30s", "500ms", "2m", "1h", "1m30s"; common/duration.hpp). 0 < t <= 3600.
  double seconds(const toml::node& node, std::string_view key) const {
    double seconds = 0;
    if (const auto* i = node.as_integer()) {
      seconds = static_cast<double>(i->get());
    } else if (const auto* f = node.as_floating_point()) {
      seconds = f->get();
    } else if (const auto* s = node.as_string()) {
      std::string error;
      const auto parsed = parse_duration(s->get(), &error);
      if (!parsed) fail(node.source(), key, "\"" + s->get() + "\": " + error);
      if (!(*parsed > 0 && *parsed <= kMaxTimeoutSeconds)) {
        fail(node.source(), key, "\"" + s->get() + "\": must be greater than 0 and at most 3600 seconds (1h)");
      }
      return *parsed;
    } else {
      fail(node.source(), key,
           "expected a duration: seconds as a number, or a string such as \"30s\", \"500ms\", \"2m\", \"1h\"");
    }
    // Written so that nan fails too.
    if (!(seconds > 0 && seconds <= kMaxTimeoutSeconds)) {
      fail(node.source(), key, "must be greater than 0 and at most 3600");
    }
    return seconds;
  }

  LogConfig log_settings(const toml::node& node) {
    const toml::table& t = expect_table(node, "log");
    reject_unknown_keys(t, "log", {"level", "error_log", "access_log"});
    LogConfig out;
    if (const toml::node* n = t.get("level")) {
      const std::string& name = expect_string(*n, "log.level");
      if (!parse_log_level(name, &out.level)) {
        fail(n->source(), "log.level",
             "unknown level \"" + name + "\" (expected debug, info, notice, warn or error)");
      }
    }
    if (const toml::node* n = t.get("error_log")) {
      const std::string& target = non_empty_string(*n, "log.error_log");
      out.error_log = target == "stderr" ? target : resolve(*n, "log.error_log", target);
    }
    if (const toml::node* n = t.get("access_log")) {
      out.access_log = resolve(*n, "log.access_log", non_empty_string(*n, "log.access_log"));
    }
    return out;
  }

  // Names are looked up now, so that a typo fails -t and the start, not each worker.
  RunAs run_as(const toml::table& root) const {
    RunAs out;
    const toml::node* user = root.get("user");
    const toml::node* group = root.get("group");
    if (user == nullptr) {
      if (group != nullptr) fail(group->source(), "group", "needs user (a group alone does not drop privileges)");
      return out;
    }
    out.user = non_empty_string(*user, "user");
    std::string error;
    auto account = lookup_user(out.user, &error);
    if (!account) fail(user->source(), "user", error);
    out.uid = account->uid;
    out.gid = account->gid;
    if (group != nullptr) {
      out.group = non_empty_string(*group, "group");
      auto gid = lookup_group(out.group, &error);
      if (!gid) fail(group->source(), "group", error);
      out.gid = *gid;
    }
    return out;
  }

  // A written [admin] table turns the endpoint on; `enabled = false` turns it off
  // again without deleting lines.
  AdminConfig admin_settings(const toml::node& node) const {
    const toml::table& t = expect_table(node, "admin");
    reject_unknown_keys(t, "admin", {"enabled", "address"});
    AdminConfig out;
    out.enabled = true;
    if (const toml::node* n = t.get("enabled")) {
      const auto* b = n->as_boolean();
      if (b == nullptr) fail(n->source(), "admin.enabled", "expected true or false");
      out.enabled = b->get();
    }
    if (const toml::node* n = t.get("address")) {
      out.address = address(*n, "admin.address");
    } else {
      out.address = *parse_address("127.0.0.1:" + std::to_string(kDefaultAdminPort));
    }
    return out;
  }

  std::vector<ListenerConfig> listeners(const toml::table& root) {
    const toml::node* node = root.get("listen");
    if (node == nullptr) fail(root.source(), "listen", "at least one [[listen]] table is required");
    const auto* array = node->as_array();
    if (array != nullptr && array->empty()) {
      fail(node->source(), "listen", "at least one [[listen]] table is required");
    }
    if (array == nullptr || !array->is_array_of_tables()) {
      fail(node->source(), "listen", "expected array of tables ([[listen]])");
    }
    std::vector<ListenerConfig> out;
    for (size_t i = 0; i < array->size(); ++i) {
      out.push_back(listener(*array->get(i)->as_table(), i, out));
    }
    return out;
  }

  ListenerConfig listener(const toml::table& t, size_t index,
                          const std::vector<ListenerConfig>& earlier) {
    const std::string path = listener_path(index);
    // Unknown: no protocol of this binary declares it. Keys of other protocols are
    // refused below as not allowed for this one.
    reject_keys(
        t, path,
        [&](std::string_view key) {
          return contains(kCommonListenerKeys, key) || contains(kStreamListenerKeys, key) ||
                 contains(kDatagramListenerKeys, key) || protocols_.any_declares(key);
        },
        "unknown key");
    ListenerConfig out;
    out.name = listener_name(t, index, earlier);
    const toml::node& address_node = required(t, path, "address");
    out.address = address(address_node, key_path(path, "address"));
    const ProtocolSpec& spec = protocol(required(t, path, "protocol"), key_path(path, "protocol"));
    out.protocol = {spec.name, spec.transport};
    reject_duplicate_address(address_node, key_path(path, "address"), out, earlier);
    // Accepted for UDP too, where it means nothing, so a listener's protocol can be
    // switched without having to delete lines.
    if (const toml::node* n = t.get("backlog")) {
      out.backlog = static_cast<int>(expect_integer(*n, key_path(path, "backlog"), 1, 65535));
    }
    if (const toml::node* n = t.get("reuseport")) out.reuseport = expect_bool(*n, key_path(path, "reuseport"));
    // Each key is allowed only where it means something, so a misplaced key (a
    // header limit on tcp-echo) is an error rather than silently ignored.
    const bool stream = spec.transport == Transport::stream;
    reject_keys(
        t, path,
        [&](std::string_view key) {
          // With [exec] the transport keys too are the program's business (no worker applies them).
          return contains(kCommonListenerKeys, key) || spec.key(key) != nullptr ||
                 (!exec_mode_ && (stream ? contains(kStreamListenerKeys, key) : contains(kDatagramListenerKeys, key)));
        },
        "not allowed for protocol \"" + spec.name + "\"", /*at_value=*/true);
    if (const toml::node* n = t.get("send_timeout")) out.send_timeout_s = seconds(*n, key_path(path, "send_timeout"));
    if (const toml::node* n = t.get("max_datagram_size")) {
      out.max_datagram_size = static_cast<std::size_t>(
          expect_integer(*n, key_path(path, "max_datagram_size"), 1, kMaxDatagramSizeLimit));
    }
    for (const KeySpec& key : spec.keys) out.keys.push_back({key.name, key_value(t, path, spec, key)});
    return out;
  }

  // A declared key's value: as written, checked for its type (and range), or its
  // default; a required key that is missing is reported at the table.
  KeyData key_value(const toml::table& t, const std::string& prefix, const ProtocolSpec& spec, const KeySpec& key) {
    const std::string name = key_path(prefix, key.name);
    const toml::node* n = t.get(key.name);
    if (n == nullptr) {
      if (key.required) fail(t.source(), name, "missing required key (protocol \"" + spec.name + "\" needs it)");
      if (key.type == KeyType::path) return resolve(t, name, std::get<std::string>(key.default_value));
      return key.default_value;
    }
    switch (key.type) {
      case KeyType::boolean: return expect_bool(*n, name);
      case KeyType::integer: return expect_integer(*n, name, key.min, key.max);
      case KeyType::duration: return seconds(*n, name);
      case KeyType::string: return checked(*n, name, key, expect_string(*n, name));
      case KeyType::path: return resolve(*n, name, non_empty_string(*n, name));
      case KeyType::directory: return checked_directory(*n, name);
      case KeyType::string_list: return string_list(*n, name, key);
      case KeyType::string_table: return string_table(*n, name, key);
    }
    fail(n->source(), name, "unsupported key type");
  }

  // A declared key's own check of one value (ValueCheck), reported at the value.
  const std::string& checked(const toml::node& at, const std::string& name, const KeySpec& key,
                             const std::string& value) const {
    if (key.check) {
      std::string complaint = key.check(value);
      if (!complaint.empty()) fail(at.source(), name, complaint);
    }
    return value;
  }

  std::vector<std::string> string_list(const toml::node& node, const std::string& name, const KeySpec& key) const {
    const auto* array = node.as_array();
    if (array == nullptr) fail(node.source(), name, "expected a list of strings, such as [\"a\", \"b\"]");
    if (array->size() > kMaxListElements) fail(node.source(), name, "at most 64 elements");
    std::vector<std::string> out;
    for (const toml::node& element : *array) out.push_back(checked(element, name, key, non_empty_string(element, name)));
    return out;
  }

  // { 404 = "/404.html" }: TOML keys are strings; these must be integers in range.
  StringTable string_table(const toml::node& node, const std::string& name, const KeySpec& key) const {
    const toml::table& t = expect_table(node, name);
    StringTable out;
    for (auto&& [k, value] : t) {
      const std::string entry = name + "." + std::string(k.str());
      std::int64_t number = 0;
      const std::string_view text = k.str();
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
      if (ec != std::errc() || end != text.data() + text.size() || number < key.min || number > key.max)
        fail(k.source(), entry,
             "expected an integer key between " + std::to_string(key.min) + " and " + std::to_string(key.max));
      out.emplace_back(number, checked(value, entry, key, non_empty_string(value, entry)));
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  const toml::node& required(const toml::table& t, const std::string& prefix,
                             std::string_view key) const {
    if (const toml::node* n = t.get(key)) return *n;
    fail(t.source(), key_path(prefix, key), "missing required key");
  }

  std::string listener_name(const toml::table& t, size_t index,
                            const std::vector<ListenerConfig>& earlier) const {
    const std::string key = key_path(listener_path(index), "name");
    const toml::node* n = t.get("name");
    std::string name = n ? non_empty_string(*n, key) : "listen#" + std::to_string(index + 1);
    for (size_t j = 0; j < earlier.size(); ++j) {
      if (earlier[j].name == name) {
        fail(n ? n->source() : t.source(), key,
             "duplicate name \"" + name + "\" (also used by " + listener_path(j) + ")");
      }
    }
    return name;
  }

  SocketAddress address(const toml::node& node, std::string_view key) const {
    std::string error;
    auto parsed = parse_address(expect_string(node, key), &error);
    if (!parsed) fail(node.source(), key, error);
    return *parsed;
  }

  const ProtocolSpec& protocol(const toml::node& node, std::string_view key) const {
    const std::string& name = expect_string(node, key);
    // Exec-mode transports ([exec], common/exec_config.hpp): the program speaks the
    // protocol, a listener only names its socket's transport; and without [exec]
    // those names have nobody to speak them (unless a protocol took the name).
    if (exec_mode_) {
      if (const ProtocolSpec* transport = exec_transport(name)) return *transport;
      fail(node.source(), key,
           "protocol \"" + name + "\" with [exec]: the program speaks the protocol and a listener names its "
           "transport, \"tcp\" or \"udp\"");
    }
    if (const ProtocolSpec* spec = protocols_.find(name)) return *spec;
    if (exec_transport(name) != nullptr) {
      fail(node.source(), key,
           "protocol \"" + name + "\" needs an [exec] program to speak it (protocols of this binary: " +
               protocols_.expected_names() + ")");
    }
    fail(node.source(), key, "unknown protocol \"" + name + "\" (expected " + protocols_.expected_names() + ")");
  }

  // Two sockets of one transport on one address would only fail at bind time, in
  // every worker; a TCP and a UDP socket on the same port are independent.
  void reject_duplicate_address(const toml::node& node, std::string_view key,
                                const ListenerConfig& current,
                                const std::vector<ListenerConfig>& earlier) const {
    for (size_t j = 0; j < earlier.size(); ++j) {
      if (earlier[j].address == current.address &&
          same_transport(earlier[j].protocol, current.protocol)) {
        fail(node.source(), key,
             "duplicate address " + current.address.to_string() + " (also used by " +
                 listener_path(j) + ")");
      }
    }
  }

  // Checked here, as the user the master runs as, so that a typo is a startup
  // error rather than a 404 on every request.
  std::string checked_directory(const toml::node& node, const std::string& key) {
    const std::string path = resolve(node, key, non_empty_string(node, key));
    char canonical[PATH_MAX];
    if (realpath(path.c_str(), canonical) == nullptr) {
      fail(node.source(), key, path + ": " + std::strerror(errno));
    }
    struct stat st {};
    if (stat(canonical, &st) != 0) fail(node.source(), key, path + ": " + std::strerror(errno));
    if (!S_ISDIR(st.st_mode)) fail(node.source(), key, path + ": not a directory");
    if (access(canonical, R_OK | X_OK) != 0) {
      fail(node.source(), key, path + ": " + std::strerror(errno));
    }
    return canonical;
  }

  // [exec] is parsed in common/exec_config_loader.cpp through the loader's own
  // readers, so its errors look like every other key's.
  class ExecReader final : public ConfigReader {
   public:
    explicit ExecReader(Loader& loader) : l_(loader) {}
    void reject_unknown_keys(const toml::table& table, std::string_view prefix,
                             std::initializer_list<std::string_view> known) const override {
      l_.reject_unknown_keys(table, prefix, known);
    }
    const std::string& non_empty_string(const toml::node& node, std::string_view key) const override {
      return l_.non_empty_string(node, key);
    }
    const toml::table& expect_table(const toml::node& node, std::string_view key) const override {
      return l_.expect_table(node, key);
    }
    double seconds(const toml::node& node, std::string_view key) const override { return l_.seconds(node, key); }
    std::string resolve(const toml::node& node, std::string_view key, std::string_view path) override {
      return l_.resolve(node, key, path);
    }
    std::string checked_directory(const toml::node& node, const std::string& key) override {
      return l_.checked_directory(node, key);
    }

   private:
    void raise(const toml::source_region& at, std::string_view key, std::string_view message) const override {
      l_.fail(at, key, message);
    }
    Loader& l_;
  };

  ExecConfig exec_settings(const toml::node& node) {
    ExecReader reader(*this);
    ExecConfig exec = parse_exec_section(node, reader);
    exec_mode_ = exec.enabled();
    return exec;
  }

  const std::string source_path_;
  const ProtocolRegistry& protocols_;
  std::string base_dir_;
  bool exec_mode_ = false;  // [exec]: listeners carry transports, not built-in protocols
};

}  // namespace

Config parse_config(std::string_view text, const std::string& source_path) {
  return parse_config(text, source_path, process_registry());
}

Config parse_config(std::string_view text, const std::string& source_path, const ProtocolRegistry& protocols) {
  toml::table root;
  try {
    root = toml::parse(text, std::string_view(source_path));
  } catch (const toml::parse_error& err) {
    const toml::source_position& at = err.source().begin;
    throw ConfigError(source_path + ":" + std::to_string(at.line) + ":" +
                      std::to_string(at.column) + ": syntax: " + std::string(err.description()));
  }
  return Loader(source_path, protocols).load(root);
}

}  // namespace preforkd
