// Counters live here, in the worker, as plain integers a Counter points to; the
// heartbeat reads them once a second.
#include "worker/protocol_context.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace preforkd {

ProtocolWorker::ProtocolWorker(const ProtocolSpec& spec, uv_loop_t* loop, int slot, unsigned generation,
                               const bool& retiring, WorkerStats& stats)
    : spec_(spec),
      loop_(loop),
      slot_(slot),
      generation_(generation),
      retiring_(retiring),
      stats_(stats),
      values_(std::make_unique<std::uint64_t[]>(spec.counters.size())) {}

Counter ProtocolWorker::counter(std::string_view name) const {
  for (std::size_t i = 0; i < spec_.counters.size(); ++i)
    if (spec_.counters[i].name == name) return Counter(&values_[i]);
  throw std::invalid_argument("protocol \"" + spec_.name + "\" declared no counter \"" + std::string(name) + "\"");
}

void ProtocolWorker::report(std::vector<ipc::ProtocolCounter>& out) const {
  for (std::size_t i = 0; i < spec_.counters.size(); ++i)
    out.push_back({spec_.counters[i].metric, spec_.counters[i].gauge, values_[i]});
}

template <class T>
const T& ListenerContext::value(std::string_view key, KeyType a, KeyType b, KeyType c) const {
  const ProtocolSpec& spec = worker_.spec();
  const KeySpec* declared = spec.key(key);
  const KeyData* data = config_.key(key);
  if (declared == nullptr || data == nullptr)
    throw std::invalid_argument("protocol \"" + spec.name + "\" declared no key \"" + std::string(key) + "\"");
  if ((declared->type != a && declared->type != b && declared->type != c) || !std::holds_alternative<T>(*data))
    throw std::invalid_argument("key \"" + std::string(key) + "\" of protocol \"" + spec.name + "\" has another type");
  return std::get<T>(*data);
}

bool ListenerContext::boolean(std::string_view key) const { return value<bool>(key, KeyType::boolean); }
std::int64_t ListenerContext::integer(std::string_view key) const {
  return value<std::int64_t>(key, KeyType::integer, KeyType::integer, KeyType::integer);
}
double ListenerContext::duration(std::string_view key) const {
  return value<double>(key, KeyType::duration, KeyType::duration, KeyType::duration);
}
const std::string& ListenerContext::string(std::string_view key) const {
  return value<std::string>(key, KeyType::string, KeyType::path, KeyType::directory);
}

}  // namespace preforkd
