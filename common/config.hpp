// The configuration model and its TOML loader. Loading validates everything so that
// a config accepted here cannot fail later for a reason the operator could have seen.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/address.hpp"
#include "common/exec_config.hpp"
#include "common/limits.hpp"
#include "common/log.hpp"
#include "common/protocol_registry.hpp"

namespace preforkd {

// A listener's protocol: its registered name (common/protocol_registry.hpp) and
// the transport that name implies.
struct ProtocolRef {
  std::string name;
  Transport transport = Transport::stream;
  bool operator==(const ProtocolRef&) const = default;
};

inline std::string_view protocol_name(const ProtocolRef& p) { return p.name; }
inline bool is_datagram(const ProtocolRef& p) { return p.transport == Transport::datagram; }

// One key a protocol declared, as loaded: written in the file, or its default.
struct KeyValue {
  std::string key;
  KeyData value;
  bool operator==(const KeyValue&) const = default;
};

struct ListenerConfig {
  std::string name;
  SocketAddress address;
  ProtocolRef protocol;
  int backlog = 511;           // nginx's default; the kernel caps it at net.core.somaxconn
  // true: one SO_REUSEPORT socket per worker slot, the kernel spreads new
  // connections by hash. false: one socket shared by every worker, which all poll
  // it (the pre-3.9-kernel way, and the baseline bench/ compares against).
  bool reuseport = true;
  // Stream transports: queued output making no progress this long closes the connection.
  double send_timeout_s = kDefaultSendTimeoutSeconds;
  // Datagram transports: the receive buffer; a longer datagram is dropped.
  std::size_t max_datagram_size = kMaxDatagramSizeLimit;
  // Every key the protocol declared, in declaration order.
  std::vector<KeyValue> keys;
  // The value of a declared key, or null.
  const KeyData* key(std::string_view name) const;
};

struct LogConfig {
  LogLevel level = LogLevel::info;
  std::string error_log = "stderr";  // "stderr" or an absolute path, opened O_APPEND
  std::string access_log;            // empty: off; else an absolute path, opened O_APPEND by each worker
};

// `user` / `group`: whom workers run as once their sockets and logs are open.
struct RunAs {
  std::string user;   // empty: not set (the master refuses to run as root then)
  std::string group;  // the user's primary group unless `group` names one
  unsigned uid = 0;
  unsigned gid = 0;
  bool set() const { return !user.empty(); }
};

// The master's HTTP admin endpoint (/metrics, /status). Off unless [admin] is
// written; loopback unless the operator writes another address.
struct AdminConfig {
  bool enabled = false;
  SocketAddress address;  // default 127.0.0.1:kDefaultAdminPort
};
inline constexpr int kDefaultAdminPort = 9180;

// After USR2, once the new master serves: `automatic` stops the old master
// (graceful), `manual` parks it (its workers retire, it keeps its sockets) until
// the operator completes (QUIT to the old master) or rolls back (HUP to the old,
// QUIT to the new).
enum class UpgradeHandover { automatic, manual };
std::string_view handover_name(UpgradeHandover handover);

// sockaddr_un.sun_path holds 108 bytes with the terminating NUL.
inline constexpr std::size_t kMaxControlSocketPath = 107;
// Where the control socket is unless `control_socket` says otherwise: next to the
// pid file, named like it (/run/preforkd.pid -> /run/preforkd.sock).
std::string default_control_socket(const std::string& pid_file);

struct Config {
  std::string source_path;           // the file this came from, for messages
  int workers = 1;                   // resolved: "auto" becomes the online CPU count
  std::string pid_file;              // absolute path
  // The master's control socket (`preforkd status`, `-s reload --wait`): an
  // absolute path, by default the pid file's with ".sock" for ".pid"; empty: off.
  std::string control_socket;
  UpgradeHandover upgrade_handover = UpgradeHandover::automatic;
  // Keep one idle worker process per slot started ahead (exec'd, linked, waiting
  // for its start message), so that a reload or a respawn does not wait for
  // fork+exec and dynamic linking on a busy machine.
  bool prespawn = true;
  // worker_cpu_affinity = "auto": slot i's worker is pinned to the master's i-th
  // allowed CPU (in turn), and new connections go to a worker on the CPU that
  // handles them (reuseport CPU steering). "off" (the default): not pinned.
  bool worker_cpu_affinity = false;
  double graceful_timeout_s = 30.0;  // QUIT / retirement: how long workers may drain before SIGKILL
  double worker_timeout_s = 30.0;    // a worker silent (no heartbeat) this long is killed and replaced
  int max_connections = kDefaultMaxConnections;  // per worker; at the cap a worker stops accepting
  RunAs run_as;
  std::uint64_t worker_rlimit_nofile = 0;  // RLIMIT_NOFILE of workers; 0 = inherit the master's
  std::uint64_t max_requests = 0;          // recycle a worker after this many requests; 0 = never
  std::uint64_t max_requests_jitter = 0;   // each worker's limit adds a random 0..jitter
  LogConfig log;
  AdminConfig admin;
  ExecConfig exec;  // exec mode: every slot runs exec.command instead of a built-in worker
  std::vector<ListenerConfig> listeners;
};

// Thrown by the loader. what() is "FILE:LINE:COL: KEY: message", like a compiler's.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Reads and validates a config file. Relative paths inside it (pid_file, root,
// error_log) are resolved against the directory of the config file.
Config load_config_file(const std::string& path);

// Same, from text already read (the master hands workers the exact text it validated).
// Protocols and their keys come from process_registry(), or from `protocols`.
Config parse_config(std::string_view text, const std::string& source_path);
Config parse_config(std::string_view text, const std::string& source_path, const ProtocolRegistry& protocols);

// Workers receive the config text in one IPC message (ipc::kMaxPayload = 1 MiB);
// half of that leaves room for the path and the framing.
inline constexpr std::size_t kMaxConfigBytes = 512 * 1024;

// Reads a whole file; throws ConfigError("PATH: reason") if it cannot or if it is
// larger than kMaxConfigBytes.
std::string read_config_text(const std::string& path);

}  // namespace preforkd
