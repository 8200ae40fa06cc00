// The worker as protocols see it: one ProtocolWorker (preforkd::Worker) per
// protocol with listeners in this config, holding that protocol's counters, and a
// ListenerContext (preforkd::Listener) for each factory call.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <vector>

#include <preforkd/protocol.hpp>

#include "common/config.hpp"
#include "common/ipc_message.hpp"
#include "common/protocol_registry.hpp"
#include "worker/worker_stats.hpp"

namespace preforkd {

class ProtocolWorker final : public Worker {
 public:
  ProtocolWorker(const ProtocolSpec& spec, uv_loop_t* loop, int slot, unsigned generation, const bool& retiring,
                 WorkerStats& stats);
  uv_loop_t* loop() const override { return loop_; }
  int slot() const override { return slot_; }
  unsigned generation() const override { return generation_; }
  bool retiring() const override { return retiring_; }
  Counter counter(std::string_view name) const override;
  Counter requests() const override { return Counter(&stats_.requests); }

  const ProtocolSpec& spec() const { return spec_; }
  Protocol& protocol() const { return *spec_.protocol; }
  // This protocol's counters for a heartbeat, appended by name.
  void report(std::vector<ipc::ProtocolCounter>& out) const;
  bool started = false;  // on_worker_start returned: on_worker_exit is owed

 private:
  const ProtocolSpec& spec_;
  uv_loop_t* loop_;
  int slot_;
  unsigned generation_;
  const bool& retiring_;
  WorkerStats& stats_;
  std::unique_ptr<std::uint64_t[]> values_;  // one per spec_.counters; never moves
};

class ListenerContext final : public Listener {
 public:
  ListenerContext(const ListenerConfig& config, ProtocolWorker& worker) : config_(config), worker_(worker) {}
  const std::string& name() const override { return config_.name; }
  std::string address() const override { return config_.address.to_string(); }
  Worker& worker() const override { return worker_; }
  bool boolean(std::string_view key) const override;
  std::int64_t integer(std::string_view key) const override;
  double duration(std::string_view key) const override;
  const std::string& string(std::string_view key) const override;

 private:
  template <class T>
  const T& value(std::string_view key, KeyType a, KeyType b = KeyType::boolean, KeyType c = KeyType::boolean) const;

  const ListenerConfig& config_;
  ProtocolWorker& worker_;
};

}  // namespace preforkd
