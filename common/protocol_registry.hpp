// The protocols a binary knows, as schemas: name, transport, declared [[listen]]
// keys (types, defaults, ranges) and counters. Filled once per process by
// preforkd::main() from the Protocol objects (the built-ins and the
// application's), each through Protocol::declare(); read by the config loader
// (master and workers validate against it) and by the master's /metrics. The
// Protocol pointer is what the worker calls for factories and hooks; common/ only
// carries it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <preforkd/protocol.hpp>

namespace preforkd {

enum class KeyType { boolean, integer, duration, string, path, directory };

// A key's value: bool (boolean), int64 (integer), double seconds (duration), or the
// string of a string, path (absolute once loaded) or directory (canonical) key.
using KeyData = std::variant<bool, std::int64_t, double, std::string>;

struct KeySpec {
  std::string name;
  KeyType type = KeyType::string;
  bool required = false;
  KeyData default_value;
  std::int64_t min = 0, max = 0;  // integer keys
};

struct CounterSpec {
  std::string name;    // as declared: "commands"
  std::string metric;  // protocol '_' name ("kv_commands"): what heartbeats carry
  bool gauge = false;
  std::string help;
};

struct ProtocolSpec {
  std::string name;
  Transport transport = Transport::stream;
  std::vector<KeySpec> keys;
  std::vector<CounterSpec> counters;
  Protocol* protocol = nullptr;  // factories and hooks; null for a schema alone (tests)
  const KeySpec* key(std::string_view name) const;
};

// A protocol that cannot be registered: a programming error in the binary, reported
// once at start ("protocol \"kv\": key \"Max\": ...").
class RegistrationError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

// Keys of every listener, whatever its protocol.
inline constexpr std::string_view kCommonListenerKeys[] = {"name", "address", "protocol", "backlog", "reuseport"};
// Keys of every listener of one transport: the worker's transport applies them.
inline constexpr std::string_view kStreamListenerKeys[] = {"send_timeout"};
inline constexpr std::string_view kDatagramListenerKeys[] = {"max_datagram_size"};

// Bounds that keep a heartbeat small (see ipc::kMaxProtocolCounters).
inline constexpr std::size_t kMaxNameBytes = 48;
inline constexpr std::size_t kMaxProtocolNameBytes = 32;
inline constexpr std::size_t kMaxKeysPerProtocol = 64;
inline constexpr std::size_t kMaxCountersPerProtocol = 32;
inline constexpr std::size_t kMaxCountersPerBinary = 256;

class ProtocolRegistry {
 public:
  // Runs protocol.declare() and adds the result; throws RegistrationError.
  void add(Protocol& protocol);
  // Adds a schema built by hand, validated the same way.
  void add(ProtocolSpec spec);
  const ProtocolSpec* find(std::string_view name) const;
  const std::deque<ProtocolSpec>& protocols() const { return protocols_; }
  // Some registered protocol declares this key (so in a listener of another
  // protocol it is "not allowed", not "unknown").
  bool any_declares(std::string_view key) const;
  // "http, tcp-echo or udp-echo", for the unknown-protocol message.
  std::string expected_names() const;
  // The counter whose metric name a heartbeat carries, or null.
  const CounterSpec* counter(std::string_view metric) const;

 private:
  std::deque<ProtocolSpec> protocols_;  // a deque: pointers to specs stay valid
};

// The registry preforkd::main() fills before it reads any config; what
// parse_config(text, path) validates against.
ProtocolRegistry& process_registry();

// [a-z][a-z0-9_]* (keys, counters) or [a-z][a-z0-9-]* (protocols), 1..max bytes.
bool valid_name(std::string_view name, char separator, std::size_t max);

}  // namespace preforkd
