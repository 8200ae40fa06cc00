// Registration: Protocol::declare() into a ProtocolSpec, and the checks that make a
// bad declaration fail at start, in every process alike, rather than at some later
// config or heartbeat.
#include "common/protocol_registry.hpp"

#include <algorithm>

namespace preforkd {
namespace {

[[noreturn]] void refuse(std::string_view protocol, std::string_view what, std::string_view why) {
  std::string message = "protocol \"" + std::string(protocol) + "\"";
  if (!what.empty()) message += ": " + std::string(what);
  throw RegistrationError(message + ": " + std::string(why));
}

bool is_listener_key(std::string_view key) {
  auto in = [&](const auto& list) { return std::find(std::begin(list), std::end(list), key) != std::end(list); };
  return in(kCommonListenerKeys) || in(kStreamListenerKeys) || in(kDatagramListenerKeys);
}

std::string metric_prefix(std::string_view protocol) {
  std::string out(protocol);
  std::replace(out.begin(), out.end(), '-', '_');
  return out;
}

// Protocol::declare() writes into this.
class SchemaBuilder final : public Schema {
 public:
  explicit SchemaBuilder(ProtocolSpec& spec) : spec_(spec) {}

  void boolean(std::string_view key, bool default_value) override { add_key(key, KeyType::boolean, default_value); }
  void integer(std::string_view key, std::int64_t default_value, std::int64_t min, std::int64_t max) override {
    KeySpec& k = add_key(key, KeyType::integer, default_value);
    k.min = min;
    k.max = max;
  }
  void duration(std::string_view key, double default_seconds) override {
    add_key(key, KeyType::duration, default_seconds);
  }
  void string(std::string_view key, std::optional<std::string_view> default_value) override {
    add_optional(key, KeyType::string, default_value);
  }
  void path(std::string_view key, std::optional<std::string_view> default_value) override {
    add_optional(key, KeyType::path, default_value);
  }
  void directory(std::string_view key) override { add_optional(key, KeyType::directory, std::nullopt); }
  void counter(std::string_view name, std::string_view help) override { add_counter(name, false, help); }
  void gauge(std::string_view name, std::string_view help) override { add_counter(name, true, help); }

 private:
  KeySpec& add_key(std::string_view key, KeyType type, KeyData default_value) {
    KeySpec spec;
    spec.name = std::string(key);
    spec.type = type;
    spec.default_value = std::move(default_value);
    spec_.keys.push_back(std::move(spec));
    return spec_.keys.back();
  }
  void add_optional(std::string_view key, KeyType type, std::optional<std::string_view> default_value) {
    KeySpec& k = add_key(key, type, std::string(default_value.value_or("")));
    k.required = !default_value.has_value();
  }
  void add_counter(std::string_view name, bool gauge, std::string_view help) {
    spec_.counters.push_back({std::string(name), {}, gauge, std::string(help)});
  }
  ProtocolSpec& spec_;
};

void check_key(const ProtocolSpec& spec, const KeySpec& key) {
  const std::string what = "key \"" + key.name + "\"";
  if (!valid_name(key.name, '_', kMaxNameBytes))
    refuse(spec.name, what, "not a valid key name ([a-z][a-z0-9_]*, at most 48 bytes)");
  if (is_listener_key(key.name)) refuse(spec.name, what, "every listener has this key already");
  if (key.type == KeyType::integer) {
    auto value = std::get<std::int64_t>(key.default_value);
    if (key.min > key.max) refuse(spec.name, what, "min is greater than max");
    if (value < key.min || value > key.max) refuse(spec.name, what, "default outside [min, max]");
  }
  if (key.type == KeyType::duration) {
    double value = std::get<double>(key.default_value);
    if (!(value > 0 && value <= 3600)) refuse(spec.name, what, "default must be greater than 0 and at most 3600 s");
  }
  if (key.type == KeyType::path && !key.required && std::get<std::string>(key.default_value).empty())
    refuse(spec.name, what, "a path's default must not be empty");
}

}  // namespace

const KeySpec* ProtocolSpec::key(std::string_view wanted) const {
  for (const KeySpec& k : keys)
    if (k.name == wanted) return &k;
  return nullptr;
}

bool valid_name(std::string_view name, char separator, std::size_t max) {
  if (name.empty() || name.size() > max || name.front() < 'a' || name.front() > 'z') return false;
  return std::all_of(name.begin(), name.end(),
                     [&](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == separator; });
}

void ProtocolRegistry::add(Protocol& protocol) {
  ProtocolSpec spec;
  spec.name = protocol.name();
  spec.transport = protocol.transport();
  spec.protocol = &protocol;
  SchemaBuilder builder(spec);
  protocol.declare(builder);
  add(std::move(spec));
}

void ProtocolRegistry::add(ProtocolSpec spec) {
  if (!valid_name(spec.name, '-', kMaxProtocolNameBytes))
    refuse(spec.name, "", "not a valid protocol name ([a-z][a-z0-9-]*, at most 32 bytes)");
  if (find(spec.name) != nullptr) refuse(spec.name, "", "registered twice");
  if (spec.keys.size() > kMaxKeysPerProtocol) refuse(spec.name, "", "more than 64 keys");
  if (spec.counters.size() > kMaxCountersPerProtocol) refuse(spec.name, "", "more than 32 counters");
  for (std::size_t i = 0; i < spec.keys.size(); ++i) {
    check_key(spec, spec.keys[i]);
    for (std::size_t j = 0; j < i; ++j)
      if (spec.keys[j].name == spec.keys[i].name) refuse(spec.name, "key \"" + spec.keys[i].name + "\"", "declared twice");
  }
  std::size_t total = spec.counters.size();
  for (const ProtocolSpec& other : protocols_) total += other.counters.size();
  if (total > kMaxCountersPerBinary) refuse(spec.name, "", "more than 256 counters in the binary");
  for (CounterSpec& c : spec.counters) {
    const std::string what = "counter \"" + c.name + "\"";
    if (!valid_name(c.name, '_', kMaxNameBytes))
      refuse(spec.name, what, "not a valid counter name ([a-z][a-z0-9_]*, at most 48 bytes)");
    c.metric = metric_prefix(spec.name) + "_" + c.name;
    // "a-b" + "c" and "a" + "b_c" would both be preforkd_a_b_c in /metrics.
    if (counter(c.metric) != nullptr) refuse(spec.name, what, "its metric name is taken by another protocol");
    for (const CounterSpec& earlier : spec.counters) {
      if (&earlier == &c) break;
      if (earlier.metric == c.metric) refuse(spec.name, what, "declared twice");
    }
  }
  protocols_.push_back(std::move(spec));
}

const ProtocolSpec* ProtocolRegistry::find(std::string_view name) const {
  for (const ProtocolSpec& p : protocols_)
    if (p.name == name) return &p;
  return nullptr;
}

bool ProtocolRegistry::any_declares(std::string_view key) const {
  for (const ProtocolSpec& p : protocols_)
    if (p.key(key) != nullptr) return true;
  return false;
}

std::string ProtocolRegistry::expected_names() const {
  std::string out;
  for (std::size_t i = 0; i < protocols_.size(); ++i) {
    if (i > 0) out += i + 1 == protocols_.size() ? " or " : ", ";
    out += protocols_[i].name;
  }
  return out;
}

const CounterSpec* ProtocolRegistry::counter(std::string_view metric) const {
  for (const ProtocolSpec& p : protocols_)
    for (const CounterSpec& c : p.counters)
      if (c.metric == metric) return &c;
  return nullptr;
}

ProtocolRegistry& process_registry() {
  static ProtocolRegistry registry;
  return registry;
}

}  // namespace preforkd
