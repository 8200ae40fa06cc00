// Plays the master's part for Supervisor unit tests: feeds an event to
// Supervisor::handle(), carries the effects out on a FakeIo (which answers
// PrepareGeneration with a worker count and Spawn with a pid, and records the
// rest), and feeds the answers back, queued as the master queues them. The
// methods are named for the operator action or fault they stand for.
#pragma once

#include <sys/types.h>

#include <csignal>
#include <cstdint>
#include <deque>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "common/address.hpp"
#include "master/notify_message.hpp"
#include "master/supervisor.hpp"

namespace preforkd {

class FakeIo {
 public:
  virtual ~FakeIo() = default;
  // The worker count of `generation`'s configuration, or 0 when it is invalid.
  virtual int prepare_generation(unsigned generation) = 0;
  // A pid, or -1 when the worker could not be started.
  virtual pid_t spawn(int slot, unsigned generation) = 0;
  virtual void signal(pid_t pid, int signum) = 0;
  // successor: retired without lingering (its sockets stay polled).
  virtual void retire(pid_t pid, bool successor) = 0;
  // A Steer effect: the serving generation and how many of its slots receive.
  virtual void serving(unsigned generation, int slots) = 0;
  virtual void steer(const std::set<int>& /*slots*/) {}
  virtual void retain(const SocketSet& /*sockets*/) {}
  virtual void reopen_logs(std::size_t /*workers*/) {}
  virtual void generation_ready(unsigned /*generation*/) {}
  virtual void reload_finished(unsigned /*generation*/, bool /*ok*/, bool /*pending*/) {}
  virtual void generation_gone(unsigned generation) = 0;
  virtual void worker_gone(pid_t pid) = 0;
  virtual void set_timer(std::uint64_t due_ms) = 0;
  virtual void all_stopped() = 0;
  // USR2 accepted: the new master's pid, or 0 when it could not be started.
  virtual pid_t start_upgrade() { return 9000; }
  // SpawnSpare: the idle process's pid, or -1.
  virtual pid_t spawn_spare() { return next_spare++; }
  // A Spawn that takes `spare`: true if it could be handed its sockets.
  virtual bool start_spare(pid_t /*spare*/, int /*slot*/, unsigned /*generation*/) { return true; }

  bool prespawn = false;  // the configurations' `prespawn`
  pid_t next_spare = 7000;

  // What each generation's configuration holds besides its worker count.
  std::uint64_t max_requests = 1'000'000;  // the driver's recycle() reports more requests than this
  std::uint64_t max_requests_jitter = 0;
  std::uint64_t draw = 0;  // the random number handed back with every Spawned
  std::vector<ListenerConfig> listeners = {default_listener()};
  ExecConfig exec;  // command set: the generations prepared from now on run programs ([exec])

  static ListenerConfig default_listener() {
    ListenerConfig l;
    l.name = "http";
    if (auto address = parse_address("127.0.0.1:8080")) l.address = *address;
    return l;
  }
};

class SupervisorDriver {
 public:
  SupervisorDriver(FakeIo& io, SupervisorOptions options) : io_(io), sup_(options) {}

  // false if it did not start (invalid configuration, or not idle).
  bool start(std::uint64_t now) {
    bool was_idle = sup_.phase() == MasterPhase::idle;
    handle(event::Start{}, now);
    return was_idle && sup_.phase() != MasterPhase::idle;
  }
  void signal(int signum, std::uint64_t now) { handle(event::Signal{signum}, now); }
  void reload(std::uint64_t now) { signal(SIGHUP, now); }
  void scale(int delta, std::uint64_t now) { signal(delta > 0 ? SIGTTIN : SIGTTOU, now); }
  void stop(StopMode mode, std::uint64_t now) { signal(mode == StopMode::graceful ? SIGQUIT : SIGTERM, now); }
  void park(std::uint64_t now) { signal(SIGWINCH, now); }
  void worker_ready(pid_t pid, std::uint64_t now) { handle(event::WorkerMessage{pid, ipc::Ready{}}, now); }
  void worker_heartbeat(pid_t pid, std::uint64_t now, std::uint64_t requests = 0) {
    ipc::Heartbeat heartbeat;
    heartbeat.counters.requests = requests;
    handle(event::WorkerMessage{pid, heartbeat}, now);
  }
  // The worker reports more requests than any max_requests.
  void recycle(pid_t pid, std::uint64_t now) { worker_heartbeat(pid, now, std::numeric_limits<std::uint64_t>::max()); }
  // An exec worker's sd_notify datagram ("READY=1\nSTATUS=...").
  void notice(pid_t pid, std::string_view datagram, std::uint64_t now) {
    handle(event::Notice{pid, parse_notify_message(datagram)}, now);
  }
  void worker_exited(pid_t pid, int status, int signal, std::uint64_t now, std::string last_output = {}) {
    handle(event::Exited{pid, status, signal, std::move(last_output)}, now);
  }
  void tick(std::uint64_t now) { handle(event::Timer{}, now); }
  void upgrade(std::uint64_t now) { signal(SIGUSR2, now); }
  void successor_serving(UpgradeHandover handover, std::uint64_t now) {
    handle(event::SuccessorServing{handover}, now);
  }
  void successor_exited(const std::string& why, std::uint64_t now) { handle(event::SuccessorExited{why}, now); }
  // Every Notify effect, in order (the reload and upgrade outcomes among them).
  std::vector<effect::Notify> notes;
  // The Notify effects of one kind.
  std::vector<effect::Notify> notes_of(effect::Notify::What what) const {
    std::vector<effect::Notify> out;
    for (const auto& n : notes)
      if (n.what == what) out.push_back(n);
    return out;
  }
  // The last Steer effect; `steers` counts them.
  effect::Steer last_steer;
  int steers = 0;
  // Generations prepared from the configuration they reuse, not re-read (a rollback's).
  std::vector<unsigned> reused;

  void handle(Event event, std::uint64_t now) {
    std::deque<Event> pending{std::move(event)};
    while (!pending.empty()) {
      Event next = std::move(pending.front());
      pending.pop_front();
      for (const Effect& effect : sup_.handle(next, now)) {
        effects.push_back(effect);
        std::visit([&](const auto& e) { execute(e, pending); }, effect);
      }
    }
  }

  MasterPhase phase() const { return sup_.phase(); }
  unsigned serving_generation() const { return sup_.serving_generation(); }
  unsigned starting_generation() const { return sup_.starting_generation(); }
  const std::vector<SlotInfo>& slots() const { return sup_.slots(); }
  const std::map<pid_t, WorkerInfo>& workers() const { return sup_.workers(); }

  // Every worker still starting reports ready at `now`.
  void ready_all(std::uint64_t now) {
    std::vector<pid_t> pids;
    for (const auto& [pid, w] : workers())
      if (w.state == WorkerState::starting) pids.push_back(pid);
    for (pid_t pid : pids) worker_ready(pid, now);
  }
  // The serving generation's worker in `slot`, or 0.
  pid_t worker_of(int slot) const {
    for (const auto& [pid, w] : workers())
      if (w.slot == slot && w.generation == serving_generation()) return pid;
    return 0;
  }
  bool reload_pending() const { return sup_.reload_pending(); }
  unsigned reloads_ok() const { return sup_.reloads_ok(); }
  unsigned reloads_failed() const { return sup_.reloads_failed(); }
  unsigned recycles() const { return sup_.recycles(); }
  unsigned worker_crashes() const { return sup_.worker_crashes(); }
  unsigned crash_loops() const { return sup_.crash_loops(); }
  const Supervisor& supervisor() const { return sup_; }

  std::vector<Effect> effects;  // every effect, in order
  std::vector<pid_t> spares_spawned;  // SpawnSpare answers, in order
  std::vector<pid_t> spare_starts;    // spares taken by a Spawn, in order

 private:
  void execute(const effect::PrepareGeneration& prepare, std::deque<Event>& pending) {
    if (prepare.reuse) {
      reused.push_back(prepare.generation);
      pending.push_back(event::GenerationPrepared{prepare.generation, prepare.reuse});
      return;
    }
    int count = io_.prepare_generation(prepare.generation);
    GenerationPtr config;
    if (count > 0) {
      auto generation = std::make_shared<GenerationConfig>();
      generation->config.workers = count;
      generation->config.max_requests = io_.max_requests;
      generation->config.max_requests_jitter = io_.max_requests_jitter;
      generation->config.listeners = io_.listeners;
      generation->config.exec = io_.exec;
      generation->config.prespawn = io_.prespawn;
      config = generation;
    }
    pending.push_back(event::GenerationPrepared{prepare.generation, config,
                                                config ? "" : "config.toml:1:1: workers: invalid"});
  }
  void execute(const effect::Spawn& spawn, std::deque<Event>& pending) {
    if (spawn.spare > 0) {
      spare_starts.push_back(spawn.spare);
      bool ok = io_.start_spare(spawn.spare, spawn.slot, spawn.generation);
      pending.push_back(event::Spawned{spawn.slot, spawn.generation, ok ? spawn.spare : -1, io_.draw, spawn.spare});
      return;
    }
    pending.push_back(event::Spawned{spawn.slot, spawn.generation, io_.spawn(spawn.slot, spawn.generation), io_.draw});
  }
  void execute(const effect::SpawnSpare&, std::deque<Event>& pending) {
    pid_t pid = io_.spawn_spare();
    spares_spawned.push_back(pid);
    pending.push_back(event::SpareSpawned{pid});
  }
  void execute(const effect::Signal& s, std::deque<Event>&) { io_.signal(s.pid, s.signum); }
  void execute(const effect::Retire& r, std::deque<Event>&) { io_.retire(r.pid, r.linger_ms == 0); }
  void execute(const effect::ApplyConfig&, std::deque<Event>&) {}
  void execute(const effect::ReopenLogs& r, std::deque<Event>&) { io_.reopen_logs(r.workers); }
  void execute(const effect::RetainSockets& r, std::deque<Event>&) { io_.retain(r.sockets); }
  void execute(const effect::Steer& s, std::deque<Event>&) {
    last_steer = s;
    ++steers;
    std::set<int> slots = s.groups.empty() ? std::set<int>{} : s.groups.front().slots;
    io_.serving(sup_.serving_generation(), static_cast<int>(slots.size()));
    io_.steer(slots);
  }
  void execute(const effect::ArmTimer& a, std::deque<Event>&) { io_.set_timer(a.due_ms); }
  void execute(const effect::StartUpgrade&, std::deque<Event>& pending) {
    pid_t pid = io_.start_upgrade();
    pending.push_back(event::SuccessorStarted{pid, pid > 0 ? "" : "uv_spawn: no such file"});
  }
  void execute(const effect::Notify& n, std::deque<Event>&) {
    notes.push_back(n);
    switch (n.what) {
      case effect::Notify::What::generation_ready: io_.generation_ready(n.generation); break;
      case effect::Notify::What::reload_finished: io_.reload_finished(n.generation, n.ok, n.pending); break;
      case effect::Notify::What::generation_gone: io_.generation_gone(n.generation); break;
      case effect::Notify::What::worker_gone: io_.worker_gone(n.pid); break;
      case effect::Notify::What::reload_requested:
      case effect::Notify::What::upgrade_requested:
      case effect::Notify::What::upgrade_started:
      case effect::Notify::What::upgrade_finished: break;
    }
  }
  void execute(const effect::AllStopped&, std::deque<Event>&) { io_.all_stopped(); }

  FakeIo& io_;
  Supervisor sup_;
};

}  // namespace preforkd
