// Observability: snapshots for the admin endpoint and the systemd state messages.
#include "master/observability.hpp"

#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <map>

#include "common/log.hpp"
#include "common/protocol_registry.hpp"
#include "common/version.hpp"

namespace preforkd {
namespace {

double unix_now_s() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

std::uint64_t loop_now_ms(uv_loop_t* loop) {
  uv_update_time(loop);
  return uv_now(loop);
}

// The operator's words: a retiring worker is draining its connections.
const char* worker_state_name(WorkerState state) {
  switch (state) {
    case WorkerState::starting: return "starting";
    case WorkerState::ready: return "ready";
    case WorkerState::retiring: return "draining";
  }
  return "?";
}

}  // namespace

Observability::Observability(uv_loop_t* loop, const Supervisor& supervisor)
    : loop_(loop),
      supervisor_(supervisor),
      notifier_(SystemdNotifier::from_environment()),
      admin_(loop, *this),
      start_time_unix_s_(unix_now_s()),
      start_ms_(loop_now_ms(loop)) {}

bool Observability::start(const AdminConfig& admin, std::string* error) {
  admin_config_ = admin;
  if (!admin.enabled) return true;
  if (!admin_.listen(admin.address, error)) {
    *error = "admin: " + *error;
    PF_LOG_ERROR("%s", error->c_str());
    return false;
  }
  PF_LOG_NOTICE("admin endpoint on http://%s/ (/metrics, /status)", admin.address.to_string().c_str());
  return true;
}

void Observability::close() { admin_.close(); }

std::string Observability::status_line() const {
  std::size_t ready = 0;
  for (const auto& [pid, worker] : supervisor_.workers())
    ready += worker.generation == supervisor_.serving_generation() && worker.state == WorkerState::ready;
  return "generation " + std::to_string(supervisor_.serving_generation()) + " serving with " + std::to_string(ready) +
         " worker(s)";
}

void Observability::generation_ready() {
  // Later calls (a slot refilled after a crash, a reload) are not news to systemd.
  if (announced_ready_) return;
  announced_ready_ = true;
  // MAINPID: for a USR2 successor this is the hand-over; systemd then tracks us.
  notifier_.notify("READY=1\nSTATUS=" + status_line() + "\nMAINPID=" + std::to_string(getpid()) + "\n");
}

void Observability::reload_requested() {
  // While a successor runs it is the service's main process: its state is the
  // news; once stopping, nothing may look like a return to service.
  if (supervisor_.successor() != SuccessorState::none || announced_stopping_) return;
  reload_announced_ = true;
  notifier_.notify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonic_usec()) + "\nSTATUS=reloading; " +
                   status_line() + "\n");
}

void Observability::reload_finished(unsigned generation, bool ok, bool pending) {
  last_reload_ = ReloadResult{true, ok, generation, unix_now_s()};
  if (pending) return;  // the queued one follows at once; READY after it
  // READY=1 answers RELOADING=1 only: not after STOPPING=1 (a stop abandoned the
  // reload), nor for a reload systemd was not told of (in a successor's time).
  if (!reload_announced_ || announced_stopping_) return;
  reload_announced_ = false;
  std::string status = ok ? "reloaded; " + status_line() : "reload failed (see the error log); " + status_line();
  // Serving again after our successor exited: we are the main process once more.
  std::string main_pid = handed_over_ && ok ? "MAINPID=" + std::to_string(getpid()) + "\n" : "";
  if (ok) handed_over_ = false;
  notifier_.notify("READY=1\nSTATUS=" + status + "\n" + main_pid);
}

void Observability::upgrade_finished(bool ok) {
  if (!ok) return;
  handed_over_ = true;
  close();  // scrapes and `preforkd status` now reach the successor alone
}

void Observability::successor_exited() {
  MasterPhase phase = supervisor_.phase();
  bool stopping = phase == MasterPhase::draining || phase == MasterPhase::terminating || phase == MasterPhase::stopped;
  if (!handed_over_ || stopping || admin_.listening() || !admin_config_.enabled) return;
  std::string error;
  if (!admin_.listen(admin_config_.address, &error)) PF_LOG_WARN("admin: after the rollback: %s", error.c_str());
}

void Observability::stopping(bool handed_over, pid_t predecessor) {
  if (announced_stopping_) return;
  announced_stopping_ = true;
  if (predecessor > 0) {
    // A rollback: the master we replaced serves on (or resumes once we are gone).
    // Told before we go, or systemd would take our exit for the service's end.
    notifier_.notify("MAINPID=" + std::to_string(predecessor) + "\nSTATUS=stopping; master " +
                     std::to_string(predecessor) + " serves again\n");
    return;
  }
  // After a USR2 hand-over the successor is systemd's main process; STOPPING=1 from
  // us would be ignored at best (NotifyAccess=all: taken as the service stopping).
  if (handed_over) {
    close();  // scrapes and `preforkd status` now reach the successor alone
    return;
  }
  notifier_.notify("STOPPING=1\nSTATUS=stopping\n");
}

MetricsSnapshot Observability::snapshot() const {
  MetricsSnapshot s;
  std::uint64_t now = loop_now_ms(loop_);
  s.master_pid = getpid();
  s.version = kVersion;
  s.phase = std::string(to_string(supervisor_.phase()));
  s.start_time_unix_s = start_time_unix_s_;
  s.uptime_s = static_cast<double>(now - start_ms_) / 1000.0;
  s.serving_generation = supervisor_.serving_generation();
  s.reloads_ok = supervisor_.reloads_ok();
  s.reloads_failed = supervisor_.reloads_failed();
  s.worker_crashes = supervisor_.worker_crashes();
  s.crash_loops = supervisor_.crash_loops();
  s.last_reload = last_reload_;
  s.total = supervisor_.ledger().total();
  // Only counters this binary declared: the decoder already refused names that are
  // not metric names; this keeps /metrics to what the protocols documented.
  for (const ipc::ProtocolCounter& c : s.total.protocol) {
    if (const CounterSpec* spec = process_registry().counter(c.name))
      s.protocol_metrics.push_back({c.name, spec->gauge, spec->help, c.value});
  }
  const auto& slots = supervisor_.slots();
  std::map<unsigned, int> per_generation;
  for (const auto& [pid, w] : supervisor_.workers()) {
    WorkerSnapshot ws;
    ws.slot = w.slot;
    ws.pid = pid;
    ws.generation = w.generation;
    ws.state = worker_state_name(w.state);
    ws.uptime_s = static_cast<double>(now - w.started_ms) / 1000.0;
    ws.counters = supervisor_.ledger().counters_of(pid);
    ws.slot_restarts = w.slot < static_cast<int>(slots.size()) ? slots[w.slot].restarts : 0;
    ws.exec = w.exec;
    ws.status = w.status;
    s.workers.push_back(ws);
    ++per_generation[w.generation];
  }
  std::sort(s.workers.begin(), s.workers.end(), [](const WorkerSnapshot& a, const WorkerSnapshot& b) {
    return a.slot != b.slot ? a.slot < b.slot : a.generation < b.generation;
  });
  if (s.serving_generation != 0) per_generation.try_emplace(s.serving_generation, 0);
  for (const auto& [generation, count] : per_generation) {
    GenerationSnapshot g;
    g.generation = generation;
    g.workers = count;
    g.state = generation == supervisor_.serving_generation()    ? "serving"
              : generation == supervisor_.starting_generation() ? "starting"
                                                                : "retiring";
    g.counters = supervisor_.ledger().generation_total(generation);
    s.generations.push_back(g);
  }
  return s;
}

}  // namespace preforkd
