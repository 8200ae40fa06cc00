// The master<->worker protocol: small, versioned, framed messages on the worker's
// IPC pipe. A frame is an 8-byte header (version, type, reserved, payload length,
// little-endian) and a payload. Decoding is defensive: a worker is a separate
// process, and a confused one must not be able to crash the master.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace preforkd::ipc {

// 3: Counters carry the protocols' own counters (heartbeat, draining).
inline constexpr std::uint8_t kVersion = 3;
inline constexpr std::size_t kHeaderSize = 8;
inline constexpr std::uint32_t kMaxPayload = 1u << 20;  // a config file is the largest payload

enum class Type : std::uint8_t {
  start = 1,      // master -> worker: who you are and the exact config text to serve
  ready = 2,      // worker -> master: every listener is bound and serving
  heartbeat = 3,  // worker -> master: alive, with counters
  retire = 4,     // master -> worker: stop accepting, finish in-flight work, exit
  draining = 5,   // worker -> master: listeners closed, connections finishing
};

// A protocol's counter or gauge (common/protocol_registry.hpp), by its metric name.
struct ProtocolCounter {
  std::string name;  // "kv_commands": [a-z0-9_], 1..kMaxCounterNameBytes
  bool gauge = false;
  std::uint64_t value = 0;
  bool operator==(const ProtocolCounter&) const = default;
};
// Bounds a decoder enforces before it allocates: a protocol name (32) + '_' + a
// counter name (48) fits, and a binary registers at most 256 counters.
inline constexpr std::size_t kMaxProtocolCounters = 256;
inline constexpr std::size_t kMaxCounterNameBytes = 96;

struct Counters {
  std::uint64_t accepted = 0;  // connections accepted (TCP) since start
  std::uint64_t active = 0;    // connections open now
  std::uint64_t requests = 0;  // HTTP requests answered + datagrams echoed
  std::vector<ProtocolCounter> protocol;  // sorted by name, each name once
  bool operator==(const Counters&) const = default;
};

struct Start {
  std::uint32_t generation = 0;
  std::uint32_t slot = 0;
  std::string config_path;
  std::string config_text;
  // The worker's inherited listening fds, one per config listener, in config order.
  // The master owns the sockets of each slot across generations and passes them on.
  std::vector<std::int32_t> listener_fds;
  bool operator==(const Start&) const = default;
};
struct Ready {
  bool operator==(const Ready&) const = default;
};
struct Heartbeat {
  Counters counters;
  bool operator==(const Heartbeat&) const = default;
};
struct Retire {
  // Keep accepting this long before letting go of the listeners: set when no
  // successor will poll them (the slot or listener is going away) and the master
  // has steered new connections elsewhere, so stragglers still get served.
  std::uint32_t linger_ms = 0;
  bool operator==(const Retire&) const = default;
};
struct Draining {
  Counters counters;
  bool operator==(const Draining&) const = default;
};

using Message = std::variant<Start, Ready, Heartbeat, Retire, Draining>;

std::string encode(const Message& message);

// Accumulates bytes from a stream and yields whole messages.
class Decoder {
 public:
  void feed(std::span<const char> bytes);
  // A message, or nullopt when more bytes are needed. On a malformed frame sets
  // *error, returns nullopt, and stays failed: the stream cannot be resynchronised.
  std::optional<Message> next(std::string* error);
  bool failed() const { return failed_; }

 private:
  std::string buffer_;
  std::size_t offset_ = 0;
  bool failed_ = false;
};

}  // namespace preforkd::ipc
