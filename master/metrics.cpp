// CounterLedger bookkeeping and the two renderings of a MetricsSnapshot.
#include "master/metrics.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <nlohmann/json.hpp>

namespace preforkd {
namespace {

// Adds b's protocol counters into a (both sorted by name); gauges only when asked:
// a gauge of a worker that is gone is a level nobody has any more.
void add_protocol(std::vector<ipc::ProtocolCounter>& a, const std::vector<ipc::ProtocolCounter>& b, bool gauges) {
  for (const ipc::ProtocolCounter& p : b) {
    if (p.gauge && !gauges) continue;
    auto it = std::lower_bound(a.begin(), a.end(), p.name,
                               [](const ipc::ProtocolCounter& x, const std::string& name) { return x.name < name; });
    if (it != a.end() && it->name == p.name) {
      it->value += p.value;
    } else {
      a.insert(it, ipc::ProtocolCounter{p.name, p.gauge, p.value});
    }
  }
}

void add_live(ipc::Counters& sum, const ipc::Counters& c) {
  sum.accepted += c.accepted;
  sum.active += c.active;
  sum.requests += c.requests;
  add_protocol(sum.protocol, c.protocol, /*gauges=*/true);
}

}  // namespace

void CounterLedger::update(pid_t pid, unsigned generation, const ipc::Counters& counters) {
  live_[pid] = Live{generation, counters};
}

void CounterLedger::retire(pid_t pid) {
  auto it = live_.find(pid);
  if (it == live_.end()) return;
  const Live& gone = it->second;
  for (ipc::Counters* sum : {&retired_, &retired_by_generation_[gone.generation]}) {
    sum->accepted += gone.counters.accepted;
    sum->requests += gone.counters.requests;
    add_protocol(sum->protocol, gone.counters.protocol, /*gauges=*/false);
  }
  live_.erase(it);
}

void CounterLedger::forget_generation(unsigned generation) { retired_by_generation_.erase(generation); }

ipc::Counters CounterLedger::counters_of(pid_t pid) const {
  auto it = live_.find(pid);
  return it == live_.end() ? ipc::Counters{} : it->second.counters;
}

ipc::Counters CounterLedger::total() const {
  ipc::Counters sum = retired_;
  for (const auto& [pid, live] : live_) add_live(sum, live.counters);
  return sum;
}

ipc::Counters CounterLedger::generation_total(unsigned generation) const {
  ipc::Counters sum;
  if (auto it = retired_by_generation_.find(generation); it != retired_by_generation_.end()) sum = it->second;
  for (const auto& [pid, live] : live_)
    if (live.generation == generation) add_live(sum, live.counters);
  return sum;
}

namespace {

// Label values escape backslash, double quote and newline (exposition format 0.0.4).
std::string escape_label(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

class Exposition {
 public:
  void family(const char* name, const char* type, const char* help) {
    text_ += "# HELP ";
    text_ += name;
    text_ += ' ';
    text_ += help;
    text_ += "\n# TYPE ";
    text_ += name;
    text_ += ' ';
    text_ += type;
    text_ += '\n';
  }
  void sample(const char* name, const std::string& labels, std::uint64_t value) {
    char number[32];
    std::snprintf(number, sizeof number, "%" PRIu64, value);
    line(name, labels, number);
  }
  void sample(const char* name, const std::string& labels, double value) {
    char number[48];
    std::snprintf(number, sizeof number, "%.3f", value);
    line(name, labels, number);
  }
  std::string take() { return std::move(text_); }

 private:
  void line(const char* name, const std::string& labels, const char* value) {
    text_ += name;
    if (!labels.empty()) {
      text_ += '{';
      text_ += labels;
      text_ += '}';
    }
    text_ += ' ';
    text_ += value;
    text_ += '\n';
  }
  std::string text_;
};

std::string worker_labels(const WorkerSnapshot& w) {
  return "slot=\"" + std::to_string(w.slot) + "\",generation=\"" + std::to_string(w.generation) + "\",pid=\"" +
         std::to_string(w.pid) + "\"";
}

std::string generation_label(unsigned generation) { return "generation=\"" + std::to_string(generation) + "\""; }

constexpr const char* kGenerationStates[] = {"starting", "serving", "retiring"};

}  // namespace

std::string render_prometheus(const MetricsSnapshot& s) {
  Exposition out;
  out.family("preforkd_build_info", "gauge", "Version of the running master; always 1.");
  out.sample("preforkd_build_info", "version=\"" + escape_label(s.version) + "\"", std::uint64_t{1});
  out.family("preforkd_master_start_time_seconds", "gauge", "Start time of the master since the Unix epoch.");
  out.sample("preforkd_master_start_time_seconds", "", s.start_time_unix_s);
  out.family("preforkd_serving_generation", "gauge", "Generation whose workers receive new connections.");
  out.sample("preforkd_serving_generation", "", std::uint64_t{s.serving_generation});

  out.family("preforkd_reloads_total", "counter", "Reloads (SIGHUP) by result: ok, or failed with the old generation kept.");
  out.sample("preforkd_reloads_total", "result=\"ok\"", s.reloads_ok);
  out.sample("preforkd_reloads_total", "result=\"failed\"", s.reloads_failed);
  out.family("preforkd_worker_restarts_total", "counter",
             "Serving workers that exited or were killed without being asked to stop, and were replaced.");
  out.sample("preforkd_worker_restarts_total", "", s.worker_crashes);
  out.family("preforkd_crash_loops_total", "counter", "Times a slot's workers failed repeatedly in a row (crash loop).");
  out.sample("preforkd_crash_loops_total", "", s.crash_loops);

  out.family("preforkd_accepted_connections_total", "counter", "Connections accepted by all workers, past and present.");
  out.sample("preforkd_accepted_connections_total", "", s.total.accepted);
  out.family("preforkd_requests_total", "counter", "HTTP requests answered and datagrams echoed by all workers, past and present.");
  out.sample("preforkd_requests_total", "", s.total.requests);
  out.family("preforkd_active_connections", "gauge", "Connections open in live workers.");
  out.sample("preforkd_active_connections", "", s.total.active);

  // The protocols' own counters (preforkd::Schema::counter / gauge).
  for (const auto& m : s.protocol_metrics) {
    const std::string name = "preforkd_" + m.name + (m.gauge ? "" : "_total");
    out.family(name.c_str(), m.gauge ? "gauge" : "counter", m.help.c_str());
    out.sample(name.c_str(), "", m.value);
  }

  out.family("preforkd_generation_workers", "gauge", "Live workers of each generation.");
  for (const auto& g : s.generations) out.sample("preforkd_generation_workers", generation_label(g.generation), std::uint64_t(g.workers));
  out.family("preforkd_generation_state", "gauge", "State of each live generation (1 for the current state).");
  for (const auto& g : s.generations)
    for (const char* state : kGenerationStates)
      out.sample("preforkd_generation_state", generation_label(g.generation) + ",state=\"" + state + "\"",
                 std::uint64_t(g.state == state));
  out.family("preforkd_generation_accepted_connections_total", "counter", "Connections accepted by a live generation's workers.");
  for (const auto& g : s.generations)
    out.sample("preforkd_generation_accepted_connections_total", generation_label(g.generation), g.counters.accepted);
  out.family("preforkd_generation_requests_total", "counter", "Requests answered by a live generation's workers.");
  for (const auto& g : s.generations)
    out.sample("preforkd_generation_requests_total", generation_label(g.generation), g.counters.requests);

  out.family("preforkd_worker_info", "gauge",
             "Live workers: kind builtin (preforkd's own) or exec (the [exec] program), and state; always 1.");
  for (const auto& w : s.workers)
    out.sample("preforkd_worker_info",
               worker_labels(w) + ",kind=\"" + (w.exec ? "exec" : "builtin") + "\",state=\"" + escape_label(w.state) +
                   "\"",
               std::uint64_t{1});
  // Counters exist for built-in workers only: a program's connections never pass through preforkd.
  out.family("preforkd_worker_accepted_connections_total", "counter", "Connections accepted by a live built-in worker (last heartbeat).");
  for (const auto& w : s.workers)
    if (!w.exec) out.sample("preforkd_worker_accepted_connections_total", worker_labels(w), w.counters.accepted);
  out.family("preforkd_worker_active_connections", "gauge", "Connections open in a live built-in worker (last heartbeat).");
  for (const auto& w : s.workers)
    if (!w.exec) out.sample("preforkd_worker_active_connections", worker_labels(w), w.counters.active);
  out.family("preforkd_worker_requests_total", "counter", "Requests answered by a live built-in worker (last heartbeat).");
  for (const auto& w : s.workers)
    if (!w.exec) out.sample("preforkd_worker_requests_total", worker_labels(w), w.counters.requests);
  return out.take();
}

std::string render_status_json(const MetricsSnapshot& s) {
  using Json = nlohmann::ordered_json;
  Json doc;
  doc["master_pid"] = s.master_pid;
  doc["version"] = s.version;
  doc["phase"] = s.phase;
  doc["start_time"] = s.start_time_unix_s;
  doc["uptime_s"] = s.uptime_s;
  doc["serving_generation"] = s.serving_generation;
  doc["reloads_ok"] = s.reloads_ok;
  doc["reloads_failed"] = s.reloads_failed;
  doc["worker_restarts"] = s.worker_crashes;
  doc["crash_loops"] = s.crash_loops;
  if (s.last_reload.happened) {
    doc["last_reload"] = {{"result", s.last_reload.ok ? "ok" : "failed"},
                          {"generation", s.last_reload.generation},
                          {"time", s.last_reload.time_unix_s}};
  } else {
    doc["last_reload"] = nullptr;
  }
  doc["accepted"] = s.total.accepted;
  doc["active"] = s.total.active;
  doc["requests"] = s.total.requests;
  Json workers = Json::array();
  for (const auto& w : s.workers) {
    Json worker = {{"slot", w.slot},         {"pid", w.pid},
                   {"generation", w.generation}, {"kind", w.exec ? "exec" : "builtin"},
                   {"state", w.state},       {"uptime_s", w.uptime_s}};
    if (w.exec) {
      // No counters: absent, not 0 (preforkd never sees a program's requests).
      worker["status"] = w.status;
    } else {
      worker["accepted"] = w.counters.accepted;
      worker["active"] = w.counters.active;
      worker["requests"] = w.counters.requests;
    }
    worker["restarts"] = w.slot_restarts;
    workers.push_back(std::move(worker));
  }
  doc["workers"] = std::move(workers);
  return doc.dump(2) + "\n";
}

}  // namespace preforkd
