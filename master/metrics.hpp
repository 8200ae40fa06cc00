// What the admin endpoint reports, and how: the master keeps each worker's last
// heartbeat counters in a CounterLedger, builds a MetricsSnapshot on request, and
// renders it as Prometheus text (GET /metrics) or JSON (GET /status). Pure code,
// no loop or processes, so it is unit-tested directly.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/ipc_message.hpp"

namespace preforkd {

// Counters of live workers plus the last counters of workers that are gone, so
// that totals never go backwards when a worker exits (Prometheus counters must be
// monotonic; a reset is read as a restart of the whole target).
class CounterLedger {
 public:
  // A worker's latest counters (heartbeat, draining). Its counters only grow.
  void update(pid_t pid, unsigned generation, const ipc::Counters& counters);
  // The worker exited: its last counters move to the retired sums.
  void retire(pid_t pid);
  // The generation is gone: its per-generation sum is dropped (the global stays).
  void forget_generation(unsigned generation);

  ipc::Counters counters_of(pid_t pid) const;
  // accepted and requests: every worker ever; active: live workers only.
  ipc::Counters total() const;
  ipc::Counters generation_total(unsigned generation) const;

 private:
  struct Live {
    unsigned generation = 0;
    ipc::Counters counters;
  };
  std::map<pid_t, Live> live_;
  ipc::Counters retired_;
  std::map<unsigned, ipc::Counters> retired_by_generation_;
};

struct WorkerSnapshot {
  int slot = 0;
  pid_t pid = 0;
  unsigned generation = 0;
  std::string state;  // starting, ready, draining
  double uptime_s = 0;
  ipc::Counters counters;  // built-in workers only: a program's requests never pass through preforkd
  unsigned slot_restarts = 0;
  bool exec = false;   // [exec]: the operator's program
  std::string status;  // a program's last STATUS= (sd_notify)
};

struct GenerationSnapshot {
  unsigned generation = 0;
  std::string state;  // starting, serving, retiring
  int workers = 0;
  ipc::Counters counters;  // generation_total()
};

struct ReloadResult {
  bool happened = false;
  bool ok = false;
  unsigned generation = 0;  // serving after it
  double time_unix_s = 0;
};

// A protocol's counter as /metrics shows it: preforkd_NAME_total (counter) or
// preforkd_NAME (gauge).
struct ProtocolMetric {
  std::string name;  // the metric name the workers report ("kv_commands")
  bool gauge = false;
  std::string help;
  std::uint64_t value = 0;  // counters: all workers ever; gauges: live workers
};

struct MetricsSnapshot {
  pid_t master_pid = 0;
  std::string version;
  std::string phase;  // the supervisor's MasterPhase
  double start_time_unix_s = 0;
  double uptime_s = 0;
  unsigned serving_generation = 0;
  std::uint64_t reloads_ok = 0;
  std::uint64_t reloads_failed = 0;
  std::uint64_t worker_crashes = 0;
  std::uint64_t crash_loops = 0;
  ReloadResult last_reload;
  ipc::Counters total;
  std::vector<ProtocolMetric> protocol_metrics;  // by name
  std::vector<WorkerSnapshot> workers;          // by slot, then generation
  std::vector<GenerationSnapshot> generations;  // by generation
};

// Prometheus text exposition format 0.0.4.
std::string render_prometheus(const MetricsSnapshot& snapshot);
// The /status document; `preforkd status` reads it.
std::string render_status_json(const MetricsSnapshot& snapshot);

}  // namespace preforkd
