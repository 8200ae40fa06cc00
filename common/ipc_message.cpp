// Encoding and defensive decoding of master<->worker frames.
#include "common/ipc_message.hpp"

#include <cstring>

namespace preforkd::ipc {
namespace {

void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_string(std::string& out, const std::string& s) {
  put_u32(out, static_cast<std::uint32_t>(s.size()));
  out += s;
}
void put_counters(std::string& out, const Counters& c) {
  put_u64(out, c.accepted);
  put_u64(out, c.active);
  put_u64(out, c.requests);
  put_u32(out, static_cast<std::uint32_t>(c.protocol.size()));
  for (const ProtocolCounter& p : c.protocol) {
    out.push_back(static_cast<char>(p.gauge ? 1 : 0));
    out.push_back(static_cast<char>(p.name.size()));
    out += p.name;
    put_u64(out, p.value);
  }
}

// Names end up in /metrics as they are: a hostile worker must not be able to
// write anything but a metric name there.
bool valid_counter_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxCounterNameBytes) return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

// Bounds-checked reads over one payload; any overrun marks the reader bad.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  std::uint64_t uint(int bytes) {
    if (data_.size() - pos_ < static_cast<std::size_t>(bytes)) return fail();
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= std::uint64_t(std::uint8_t(data_[pos_ + i])) << (8 * i);
    pos_ += bytes;
    return v;
  }
  std::string string() { return bytes(uint(4)); }
  Counters counters() {
    Counters c{uint(8), uint(8), uint(8), {}};
    std::uint64_t count = uint(4);
    // Each entry takes at least 11 bytes (kind, length, one name byte, value): a
    // count beyond what remains is malformed, and is refused before allocating.
    if (!ok_ || count > kMaxProtocolCounters || count > remaining() / 11) return fail(), c;
    for (std::uint64_t i = 0; i < count && ok_; ++i) {
      ProtocolCounter p;
      std::uint64_t kind = uint(1);
      std::uint64_t length = uint(1);
      p.name = bytes(length);
      p.value = uint(8);
      p.gauge = kind == 1;
      // Sorted and unique, as the worker sends them: a decoded set has one form.
      bool in_order = c.protocol.empty() || c.protocol.back().name < p.name;
      if (kind > 1 || !valid_counter_name(p.name) || !in_order) return fail(), c;
      c.protocol.push_back(std::move(p));
    }
    return c;
  }
  std::string bytes(std::uint64_t n) {
    if (!ok_ || data_.size() - pos_ < n) return fail(), std::string();
    std::string s(data_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  std::size_t remaining() const { return data_.size() - pos_; }
  // A payload must be consumed exactly: trailing bytes mean a mismatched peer.
  bool complete() const { return ok_ && pos_ == data_.size(); }

 private:
  std::uint64_t fail() {
    ok_ = false;
    pos_ = data_.size();
    return 0;
  }
  std::string_view data_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

Type type_of(const Message& m) {
  return std::visit(
      [](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, Start>) return Type::start;
        else if constexpr (std::is_same_v<T, Ready>) return Type::ready;
        else if constexpr (std::is_same_v<T, Heartbeat>) return Type::heartbeat;
        else if constexpr (std::is_same_v<T, Retire>) return Type::retire;
        else return Type::draining;
      },
      m);
}

std::optional<Message> decode_payload(Type type, std::string_view payload) {
  Reader r(payload);
  Message m;
  switch (type) {
    case Type::start: {
      Start s;
      s.generation = static_cast<std::uint32_t>(r.uint(4));
      s.slot = static_cast<std::uint32_t>(r.uint(4));
      s.config_path = r.string();
      s.config_text = r.string();
      std::uint64_t count = r.uint(4);
      // Each fd takes 4 bytes, so a count beyond what remains is malformed: checking
      // first keeps a hostile count from costing memory or time.
      if (count > r.remaining() / 4) return std::nullopt;
      for (std::uint64_t i = 0; i < count; ++i) s.listener_fds.push_back(static_cast<std::int32_t>(r.uint(4)));
      m = std::move(s);
      break;
    }
    case Type::ready: m = Ready{}; break;
    case Type::heartbeat: m = Heartbeat{r.counters()}; break;
    case Type::retire: m = Retire{static_cast<std::uint32_t>(r.uint(4))}; break;
    case Type::draining: m = Draining{r.counters()}; break;
    default: return std::nullopt;
  }
  if (!r.complete()) return std::nullopt;
  return m;
}

}  // namespace

std::string encode(const Message& message) {
  std::string payload;
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, Start>) {
          put_u32(payload, v.generation);
          put_u32(payload, v.slot);
          put_string(payload, v.config_path);
          put_string(payload, v.config_text);
          put_u32(payload, static_cast<std::uint32_t>(v.listener_fds.size()));
          for (std::int32_t fd : v.listener_fds) put_u32(payload, static_cast<std::uint32_t>(fd));
        } else if constexpr (std::is_same_v<T, Retire>) {
          put_u32(payload, v.linger_ms);
        } else if constexpr (std::is_same_v<T, Heartbeat> || std::is_same_v<T, Draining>) {
          put_counters(payload, v.counters);
        }
      },
      message);
  std::string frame;
  frame.reserve(kHeaderSize + payload.size());
  frame.push_back(static_cast<char>(kVersion));
  frame.push_back(static_cast<char>(type_of(message)));
  frame.push_back(0);
  frame.push_back(0);
  put_u32(frame, static_cast<std::uint32_t>(payload.size()));
  frame += payload;
  return frame;
}

void Decoder::feed(std::span<const char> bytes) {
  if (failed_) return;
  // Compact lazily so a stream of small frames does not copy the buffer each time.
  if (offset_ > 0 && offset_ == buffer_.size()) {
    buffer_.clear();
    offset_ = 0;
  }
  buffer_.append(bytes.data(), bytes.size());
}

std::optional<Message> Decoder::next(std::string* error) {
  if (failed_) return std::nullopt;
  std::string_view pending(buffer_.data() + offset_, buffer_.size() - offset_);
  if (pending.size() < kHeaderSize) return std::nullopt;
  auto version = static_cast<std::uint8_t>(pending[0]);
  auto type = static_cast<Type>(static_cast<std::uint8_t>(pending[1]));
  std::uint32_t length = 0;
  for (int i = 0; i < 4; ++i) length |= std::uint32_t(std::uint8_t(pending[4 + i])) << (8 * i);
  auto fail = [&](const std::string& why) {
    failed_ = true;
    if (error) *error = why;
    return std::nullopt;
  };
  if (version != kVersion) return fail("unsupported protocol version " + std::to_string(version));
  if (length > kMaxPayload) return fail("frame of " + std::to_string(length) + " bytes exceeds limit");
  if (pending.size() < kHeaderSize + length) return std::nullopt;
  auto message = decode_payload(type, pending.substr(kHeaderSize, length));
  if (!message) return fail("malformed frame of type " + std::to_string(static_cast<int>(type)));
  offset_ += kHeaderSize + length;
  if (offset_ > 65536 && offset_ * 2 > buffer_.size()) {
    buffer_.erase(0, offset_);
    offset_ = 0;
  }
  return message;
}

}  // namespace preforkd::ipc
