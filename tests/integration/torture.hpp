// The lifecycle torture driver: starts preforkd under mixed load, applies a
// seeded random (or a given) sequence of operator actions, checks invariants after
// every step and the client losses at the end, and reports a failure with its seed
// and action list. The cases that use it are in torture_test.cpp.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

#include "tests/integration/harness.hpp"
#include "tests/integration/load_client.hpp"

namespace itest::torture {

using Clock = std::chrono::steady_clock;

// How long one answer may take before it counts as lost: longer than a SIGSTOPped
// worker takes to be found (worker_timeout + a heartbeat) and replaced, so that
// connections queued on its socket are served by the replacement, not lost.
constexpr Millis kAnswerTimeout = 10s;
constexpr double kWorkerTimeout = 3;
constexpr double kGracefulTimeout = 5;
constexpr Millis kSettle = 20s;  // bound on any one action's effect

// One operator action and its parameter (a worker count, a max_requests value).
struct Step {
  std::string action;
  long arg = 0;
  std::string text() const { return arg ? action + "=" + std::to_string(arg) : action; }
};

inline std::string describe(const std::vector<Step>& steps) {
  std::string out;
  for (const auto& s : steps) out += (out.empty() ? "" : " ") + s.text();
  return out;
}

// What the config says and what the master should therefore run.
struct Model {
  int config_workers = 2;
  int adjust = 0;  // TTIN/TTOU since the last reload (a reload resets it)
  bool extra_listener = false;
  long max_requests = 0;
  bool cpu_affinity = false;  // worker_cpu_affinity = "auto": pinned workers, steering by CPU
  int expected() const { return config_workers + adjust; }
};

// A worker the test killed: a request in flight while it was stopped or dying
// (begun before the master saw it die, failed after the signal) may be lost.
struct KillWindow {
  std::string what;
  Clock::time_point from, to;  // the signal; the master's "exited unexpectedly" (+ slack)
  long attributed = 0;
  bool covers(const LoadError& e) const { return e.when >= from && e.started <= to; }
};

inline std::string cmdline_of(pid_t pid) {
  std::string cmd = read_file("/proc/" + std::to_string(pid) + "/cmdline");
  std::replace(cmd.begin(), cmd.end(), '\0', ' ');
  return cmd;
}

// "--generation N" of a worker's command line; 0 if it is not a worker.
inline unsigned generation_of(const std::string& cmdline) {
  auto at = cmdline.find("--generation ");
  return at == std::string::npos ? 0 : static_cast<unsigned>(std::atol(cmdline.c_str() + at + 13));
}

// Client threads per kind of load.
struct Mix {
  int keepalive = 2, close = 2, tcp_echo = 1, udp_echo = 1;
};

class Torture {
 public:
  explicit Torture(std::uint64_t seed, Mix mix = {}) : seed_(seed), random_(seed), mix_(mix) {}

  // Runs `steps` random actions (or exactly `fixed`), then QUIT; true if every
  // invariant held. Failures are reported with the seed and the actions so far.
  bool run(int steps, const std::vector<Step>& fixed = {}) {
    ServerOptions options{.workers = 2, .graceful_timeout = kGracefulTimeout, .worker_timeout = kWorkerTimeout};
    server_ = std::make_unique<Preforkd>(options);
    std::string why;
    if (!server_->start(10s, &why)) return fail("start: " + why);
    base_config_ = read_file(server_->config_path());
    started_ = Clock::now();
    started_wall_ = std::chrono::system_clock::now();
    seen_pids_.insert(server_->master_pid());
    start_load();
    int count = fixed.empty() ? steps : static_cast<int>(fixed.size());
    for (int i = 0; i < count && ok_; ++i) {
      Step step = fixed.empty() ? pick() : fixed[static_cast<std::size_t>(i)];
      done_.push_back(step);
      auto t0 = Clock::now();
      step_started_.push_back(t0);
      apply(step);
      if (ok_) check_invariants();
      if (verbose_)
        std::cout << "[ step     ] " << i + 1 << " " << step.text() << " ("
                  << std::chrono::duration_cast<Millis>(Clock::now() - t0).count() << " ms)\n";
    }
    if (ok_) quit();
    stop_load();
    account_losses();
    finish();
    return ok_;
  }

  const std::vector<Step>& actions() const { return done_; }
  void set_verbose(bool v) { verbose_ = v; }

 private:
  // --- Choosing -------------------------------------------------------------------

  Step pick() {
    static const std::vector<std::pair<std::string, int>> weights = {
        {"hup", 3},        {"hup_workers", 3}, {"hup_listener", 2}, {"hup_invalid", 2}, {"hup_max_requests", 2},
        {"usr2", 2},       {"usr2_fail", 2},   {"usr1", 2},         {"hup_usr1", 1},    {"ttin_usr1", 1},    {"ttin", 3},
        {"ttou", 3},       {"winch_hup", 2},   {"ttin_winch_hup", 2}, {"kill9", 3},     {"sigstop", 1},
        {"hup_affinity", 2},
    };
    // Local exploration past a known bug: PREFORKD_TORTURE_EXCLUDE="hup_usr1 usr2_fail".
    std::string exclude = std::string(" ") + (std::getenv("PREFORKD_TORTURE_EXCLUDE") ?: "") + " ";
    auto weight = [&](const std::string& name, int w) { return exclude.find(" " + name + " ") == std::string::npos ? w : 0; };
    int total = 0;
    for (const auto& [name, w] : weights) total += weight(name, w);
    int r = std::uniform_int_distribution<int>(0, total - 1)(random_);
    std::string action;
    for (const auto& [name, w] : weights) {
      if (r < weight(name, w)) {
        action = name;
        break;
      }
      r -= weight(name, w);
    }
    Step step{action};
    if (action == "hup_workers") step.arg = std::uniform_int_distribution<int>(1, 4)(random_);
    if (action == "hup_max_requests") step.arg = model_.max_requests ? 0 : 1500;
    if (action == "kill9" || action == "sigstop") step.arg = std::uniform_int_distribution<int>(1, 1000)(random_);
    return step;
  }

  // --- Acting ---------------------------------------------------------------------

  void apply(const Step& step) {
    const std::string& a = step.action;
    if (a == "hup") reload();
    else if (a == "hup_workers") {
      model_.config_workers = static_cast<int>(step.arg);
      reload();
    } else if (a == "hup_listener") toggle_listener();
    else if (a == "hup_invalid") invalid_reload();
    else if (a == "hup_max_requests") {
      model_.max_requests = step.arg;
      reload();
    } else if (a == "hup_affinity") {
      model_.cpu_affinity = !model_.cpu_affinity;  // every group re-programmed, by CPU or back
      reload();
    } else if (a == "usr2") upgrade();
    else if (a == "usr2_fail") failed_upgrade();
    else if (a == "usr1") reopen("");
    else if (a == "hup_usr1") reopen("hup");
    else if (a == "ttin_usr1") reopen("ttin");
    else if (a == "ttin") scale(+1);
    else if (a == "ttou") scale(-1);
    else if (a == "winch_hup") park_and_reload();
    else if (a == "ttin_winch_hup") {
      scale(+1);
      if (ok_) park_and_reload();
    } else if (a == "kill9") kill_worker(SIGKILL, step.arg);
    else if (a == "sigstop") kill_worker(SIGSTOP, step.arg);
    else if (a == "quit_in_recycle") quit_in_recycle_ = true;
    else if (a == "stop_master") stall_master();  // the final QUIT waits for a recycle
    else fail("unknown action " + a);
  }

  std::string config_text(bool extra_listener) const {
    std::string text = base_config_;
    auto start = text.find("workers = ");
    text.replace(start, text.find('\n', start) - start, "workers = " + std::to_string(model_.config_workers));
    if (model_.cpu_affinity) text = "worker_cpu_affinity = \"auto\"\n" + text;
    if (model_.max_requests)
      text = "max_requests = " + std::to_string(model_.max_requests) + "\nmax_requests_jitter = 500\n" + text;
    if (extra_listener)
      text += "\n[[listen]]\nname = \"extra\"\naddress = \"127.0.0.1:" + std::to_string(extra_port_) +
              "\"\nprotocol = \"http\"\nroot = \"www\"\n";
    return text;
  }

  void write_config() { write_file(server_->config_path(), config_text(model_.extra_listener)); }

  // HUP with the model's config; waits for the new generation to take over.
  bool reload() {
    write_config();
    std::size_t from = mark();
    if (!server_->signal(SIGHUP)) return fail("kill(master, HUP) failed");
    if (!wait_master_line(from, "retiring generation", kSettle)) return fail("HUP: no new generation");
    model_.adjust = 0;
    return true;
  }

  // A second http listener appears (its load starts once it serves) or disappears
  // (its load stops first: refused connections after removal are not errors).
  void toggle_listener() {
    if (model_.extra_listener) {
      stop_extra_load();
      model_.extra_listener = false;
      reload();
    } else {
      extra_port_ = free_port();
      model_.extra_listener = true;
      if (reload()) start_extra_load();
    }
  }

  void invalid_reload() {
    write_file(server_->config_path(), config_text(model_.extra_listener) +
                                           "\n[[listen]]\naddress = \"127.0.0.1:1\"\nprotocol = \"smtp\"\n");
    std::size_t from = mark();
    if (!server_->signal(SIGHUP)) return (void)fail("kill(master, HUP) failed");
    if (!wait_master_line(from, "reload failed", kSettle)) return (void)fail("invalid HUP: no \"reload failed\"");
    write_config();
  }

  void upgrade() {
    write_config();
    pid_t old = server_->master_pid();
    std::size_t from = mark();
    if (!server_->signal(SIGUSR2)) return (void)fail("kill(master, USR2) failed");
    if (!wait_gone(old, kSettle)) return (void)fail("USR2: the old master " + std::to_string(old) + " did not exit");
    std::string text = read_file(server_->pid_file());
    pid_t fresh = static_cast<pid_t>(std::atol(text.c_str()));
    if (fresh <= 0 || fresh == old || process_gone(fresh)) {
      // A master that exits on its own logs "exit" last; one that crashed does not.
      bool crashed = server_->log().find(" " + std::to_string(old) + " master: exit") == std::string::npos;
      return (void)fail("USR2: pid file says \"" + text + "\"; the old master " + std::to_string(old) +
                        (crashed ? " died without logging \"exit\" (a crash)" : " exited"));
    }
    server_->follow_master(fresh);
    seen_pids_.insert(fresh);
    if (!wait_master_line(from, "upgrade: adopted", 1s)) return (void)fail("USR2: new master adopted nothing");
    if (!read_file(server_->pid_file() + ".oldbin").empty()) return (void)fail("USR2: .oldbin left behind");
    model_.adjust = 0;
  }

  void failed_upgrade() {
    write_file(server_->config_path(), "workers = \"many\"\n" + config_text(model_.extra_listener));
    std::size_t from = mark();
    if (!server_->signal(SIGUSR2)) return (void)fail("kill(master, USR2) failed");
    bool seen = wait_master_line(from, "upgrade failed", kSettle);
    write_config();
    if (!seen) fail("failing USR2: no \"upgrade failed\"");
  }

  // USR1 alone, or right behind a HUP or a TTIN, so that the master forwards it
  // to workers that are still starting.
  void reopen(const std::string& behind) {
    std::size_t from = mark();
    if (behind == "hup") {
      write_config();
      if (!server_->signal(SIGHUP)) return (void)fail("kill(master, HUP) failed");
    } else if (behind == "ttin") {
      if (!server_->signal(SIGTTIN)) return (void)fail("kill(master, TTIN) failed");
      // Pending together, USR1 (10) would be delivered before TTIN (21).
      std::this_thread::sleep_for(1ms);
    }
    if (!server_->signal(SIGUSR1)) return (void)fail("kill(master, USR1) failed");
    if (!wait_master_line(from, "logs reopened; telling", kSettle)) return (void)fail("USR1: master did not reopen");
    if (behind == "hup") {
      if (!wait_master_line(from, "retiring generation", kSettle)) return (void)fail("HUP+USR1: no new generation");
      model_.adjust = 0;
    } else if (behind == "ttin") {
      if (!wait_master_line(from, "scaling up: slot", kSettle)) return (void)fail("TTIN+USR1: no \"scaling up\"");
      model_.adjust += 1;
      if (!wait_master_line(from, "workers ready", kSettle)) fail("TTIN+USR1: the new worker never ready");
    }
  }

  void scale(int delta) {
    bool at_floor = delta < 0 && model_.expected() <= 1;
    std::size_t from = mark();
    if (!server_->signal(delta > 0 ? SIGTTIN : SIGTTOU)) return (void)fail("kill(master, TTIN/TTOU) failed");
    const char* line = delta > 0 ? "scaling up: slot" : at_floor ? "already at one worker" : "scaling down: slot";
    if (!wait_master_line(from, line, kSettle)) return (void)fail(std::string("no \"") + line + "\"");
    if (!at_floor) model_.adjust += delta;
    if (delta > 0 && !wait_master_line(from, "workers ready", kSettle)) fail("TTIN: the new worker never ready");
  }

  void park_and_reload() {
    std::size_t from = mark();
    if (!server_->signal(SIGWINCH)) return (void)fail("kill(master, WINCH) failed");
    if (!wait_master_line(from, "worker(s) gracefully; the master stays", kSettle))
      return (void)fail("WINCH: master did not park");
    std::this_thread::sleep_for(Millis(std::uniform_int_distribution<int>(0, 200)(random_)));
    reload();
  }

  // kill -9 or SIGSTOP of one serving worker (picked by `pick`); client errors in
  // its window are allowed, up to the number of client threads.
  void kill_worker(int signum, long pick) {
    // A worker just forked shows the master's command line until its exec, and a
    // recycle may be handing its slot over: look again, bounded, before failing.
    auto workers = serving_workers();
    for (int retry = 0; retry < 20 && workers.empty(); ++retry) {
      std::this_thread::sleep_for(100ms);
      workers = serving_workers();
    }
    if (workers.empty()) return (void)fail("no worker to kill");
    std::sort(workers.begin(), workers.end());
    pid_t victim = workers[static_cast<std::size_t>(pick) % workers.size()];
    KillWindow window{(signum == SIGKILL ? "kill -9 " : "SIGSTOP ") + std::to_string(victim), Clock::now(), {}};
    std::size_t from = mark();
    ++kills_;
    kill(victim, signum);
    if (signum == SIGSTOP && !wait_master_line(from, "killing worker " + std::to_string(victim), kSettle)) {
      kill(victim, SIGKILL);
      fail("SIGSTOPped worker " + std::to_string(victim) + " not killed after worker_timeout");
    }
    if (ok_ && !wait_exit_line(from, victim, kSettle))
      fail("killed worker " + std::to_string(victim) + ": master did not notice");
    // Its replacement (none if the victim was a recycling successor; check_invariants
    // then sees whether the slot is served).
    if (ok_) wait_master_line(from, "workers ready", 5s);
    window.to = Clock::now() + 500ms;  // the client's side of the reset may come a little later
    windows_.push_back(window);
  }

  // --- Checking -------------------------------------------------------------------

  std::size_t mark() const {
    std::error_code error;
    auto size = std::filesystem::file_size(server_->dir() + "/preforkd.log", error);
    return error ? 0 : static_cast<std::size_t>(size);
  }

  // A line of the current master, written after offset `from`, containing needle;
  // false at once if the master dies or abandons a reload instead.
  bool wait_master_line(std::size_t from, const std::string& needle, Millis timeout,
                        std::string* found = nullptr) const {
    return wait_master_line_where(from, [&](const std::string& line) { return line.find(needle) != std::string::npos; },
                                  timeout, found);
  }

  // The master's line about `pid`'s exit, whichever wording its state gave it:
  // "worker P exited unexpectedly", "successor P exited before it was ready" or, for
  // one that was retiring (a recycle had just begun), "worker P of generation G exited".
  bool wait_exit_line(std::size_t from, pid_t pid, Millis timeout) const {
    std::string who = " " + std::to_string(pid) + " ";
    return wait_master_line_where(
        from,
        [&](const std::string& line) {
          auto at = line.find(who);
          return at != std::string::npos && line.find(" exited ", at + who.size() - 1) != std::string::npos;
        },
        timeout);
  }

  bool wait_master_line_where(std::size_t from, const std::function<bool(const std::string&)>& wanted, Millis timeout,
                              std::string* found = nullptr) const {
    std::string who = " " + std::to_string(server_->master_pid()) + " master: ";
    auto deadline = Clock::now() + timeout;
    do {
      // Only what was written since `from`, polled often: quit_in_recycle acts on a
      // line within a millisecond or two.
      std::ifstream in(server_->dir() + "/preforkd.log", std::ios::binary);
      in.seekg(static_cast<std::streamoff>(from));
      for (std::string line; std::getline(in, line);)
        if (line.find(who) != std::string::npos && wanted(line)) {
          if (found) *found = line;
          return true;
        }
        else if (line.find(who) != std::string::npos && line.find("reload to generation") != std::string::npos)
          return false;
      if (process_gone(server_->master_pid())) return false;
      std::this_thread::sleep_for(1ms);
    } while (Clock::now() < deadline);
    return false;
  }

  // Workers a kill may pick: the newest generation's, within the configured slots,
  // not stopped and not retiring (a retiring one may hold a closing socket's queue:
  // killing it would lose more than its own in-flight requests).
  std::vector<pid_t> serving_workers() const {
    std::vector<pid_t> out;
    unsigned newest = 0;
    std::string log = server_->log();
    for (pid_t pid : server_->worker_pids()) newest = std::max(newest, generation_of(cmdline_of(pid)));
    for (pid_t pid : server_->worker_pids()) {
      std::string cmd = cmdline_of(pid);
      auto slot_at = cmd.find("--slot ");
      int slot = slot_at == std::string::npos ? -1 : std::atoi(cmd.c_str() + slot_at + 7);
      if (generation_of(cmd) == newest && slot >= 0 && slot < model_.expected() && proc_stat_field(pid, 3) != "T" &&
          log.find("retiring worker " + std::to_string(pid)) == std::string::npos)
        out.push_back(pid);
    }
    return out;
  }

  // Eventually (bounded): exactly the expected number of workers, all of one
  // generation, nothing else under the master (old generations have drained).
  bool worker_set_matches(std::string* seen) {
    auto deadline = Clock::now() + kSettle;
    int stable = 0;
    do {
      std::set<unsigned> generations;
      auto pids = server_->worker_pids();
      for (pid_t pid : pids) {
        generations.insert(generation_of(cmdline_of(pid)));
        seen_pids_.insert(pid);
      }
      bool good = static_cast<int>(pids.size()) == model_.expected() && generations.size() == 1 &&
                  *generations.begin() != 0;
      *seen = std::to_string(pids.size()) + " worker(s), " + std::to_string(generations.size()) + " generation(s)";
      stable = good ? stable + 1 : 0;
      if (stable >= 2) return true;
      std::this_thread::sleep_for(50ms);
    } while (Clock::now() < deadline);
    return false;
  }

  // worker_cpu_affinity: each worker on one CPU when it is on, on all of ours when
  // it is off (a reload that turns it off leaves no worker pinned). Moot on one CPU.
  bool affinity_matches(std::string* why) const {
    cpu_set_t ours;
    if (sched_getaffinity(0, sizeof ours, &ours) != 0 || CPU_COUNT(&ours) < 2) return true;
    for (pid_t pid : server_->worker_pids()) {
      cpu_set_t set;
      if (sched_getaffinity(pid, sizeof set, &set) != 0) continue;  // gone meanwhile
      const int cpus = CPU_COUNT(&set);
      if (model_.cpu_affinity ? cpus != 1 : cpus != CPU_COUNT(&ours)) {
        *why = "worker " + std::to_string(pid) + " may run on " + std::to_string(cpus) + " CPU(s) with worker_cpu_affinity " +
               (model_.cpu_affinity ? "on" : "off");
        return false;
      }
    }
    return true;
  }

  void check_invariants() {
    pid_t master = server_->master_pid();
    if (process_gone(master)) return (void)fail("the master " + std::to_string(master) + " died");
    std::string pid_text = read_file(server_->pid_file());
    if (pid_text != std::to_string(master) + "\n")
      return (void)fail("pid file says \"" + pid_text + "\", master is " + std::to_string(master));
    std::string seen;
    if (!worker_set_matches(&seen))
      return (void)fail("worker set: expected " + std::to_string(model_.expected()) + " of one generation, saw " +
                        seen);
    if (std::string why; !affinity_matches(&why)) return (void)fail(why);
    // Every worker death the master reports must be one this test caused.
    std::string log = server_->log();
    long deaths = static_cast<long>(count_of(log, "exited unexpectedly") + count_of(log, "exited before it was ready"));
    if (deaths != kills_) {
      std::string lines;
      std::istringstream in(log);
      for (std::string line; std::getline(in, line);)
        if (line.find("exited unexpectedly") != std::string::npos || line.find("before it was ready") != std::string::npos)
          lines += "\n    " + line;
      return (void)fail(std::to_string(deaths) + " worker(s) died unexpectedly, the test killed " +
                        std::to_string(kills_) + ":" + lines);
    }
    // ("crash loop" is not here: five kill -9 in a row of one slot are one, and
    // deaths are already held to the test's kills above.)
    for (const char* bad : {"reload to generation", "AddressSanitizer", "runtime error:",
                            "LeakSanitizer", "bad ipc message"})
      if (log.find(bad) != std::string::npos) return (void)fail(std::string("the log says \"") + bad + "\"");
    for (int i = 0; i < 5; ++i) {
      auto r = http_get(server_->http_port(), "/hello.txt");
      if (!r || r->status != 200) return (void)fail("a fresh GET was not answered with 200");
      if (model_.extra_listener && (!(r = http_get(extra_port_, "/hello.txt")) || r->status != 200))
        return (void)fail("a fresh GET on the extra listener was not answered with 200");
    }
    if (!udp_roundtrip("127.0.0.1", server_->echo_port(), "probe", kAnswerTimeout))
      fail("a fresh datagram was not answered");
  }

  void quit() {
    pid_t master = server_->master_pid();
    std::vector<pid_t> workers = server_->worker_pids();
    seen_pids_.insert(workers.begin(), workers.end());
    // Under load: what a worker has accepted must still be answered; only new
    // connections (refused) and datagrams to closed sockets are lost after this.
    if (quit_in_recycle_) {
      // A successor hung before ready (SIGSTOPped) when QUIT comes: the master kills
      // it after graceful_timeout and must then exit.
      if (!stop_a_starting_successor()) return (void)fail("no recycle's successor caught before it was ready");
    } else if (model_.max_requests && std::uniform_int_distribution<int>(0, 1)(random_)) {
      // QUIT while a successor starts: it must stop too, and the master exit.
      quit_in_recycle_ = wait_master_line(mark(), "reached max_requests; starting successor", 10s);
    }
    quit_at_ = Clock::now();
    if (!server_->signal(SIGQUIT)) return (void)fail("kill(master, QUIT) failed");
    if (!wait_gone(master, Millis(static_cast<long>(kGracefulTimeout * 1000)) + 10s))
      return (void)fail("QUIT" + std::string(quit_in_recycle_ ? " during a recycle" : "") + ": the master " +
                        std::to_string(master) + " is still running");
    for (pid_t pid : seen_pids_)
      if (!wait_gone(pid, 2s)) return (void)fail("after QUIT, pid " + std::to_string(pid) + " is still running");
    if (!read_file(server_->pid_file()).empty()) fail("after QUIT the pid file is still there");
    stop_load();
  }

  // The master descheduled longer than worker_timeout (SIGSTOP, as a starved CPU
  // or a debugger would): its workers kept sending heartbeats, so none may be
  // taken for hung when it runs again.
  void stall_master() {
    pid_t master = server_->master_pid();
    if (kill(master, SIGSTOP) != 0) return (void)fail("kill(master, STOP) failed");
    std::this_thread::sleep_for(Millis(static_cast<long>(kWorkerTimeout * 1000)) + 1500ms);
    kill(master, SIGCONT);
    std::this_thread::sleep_for(500ms);  // what it does first when it runs again
  }

  // SIGSTOPs the successor a recycle starts, before the master has seen it ready
  // (a quicker one is let go and the next recycle tried); true once one is caught.
  bool stop_a_starting_successor() {
    for (int attempt = 0; attempt < 30; ++attempt) {
      std::size_t from = mark();
      std::string line;
      if (!wait_master_line(from, "reached max_requests; starting successor", 10s, &line)) return false;
      pid_t successor = static_cast<pid_t>(std::atol(line.c_str() + line.rfind(' ') + 1));
      kill(successor, SIGSTOP);
      std::this_thread::sleep_for(200ms);  // a ready message already sent reaches the master meanwhile
      if (!wait_master_line(from, "successor " + std::to_string(successor) + " ready", 0ms)) return true;
      kill(successor, SIGCONT);
    }
    return false;
  }

  // --- Load -----------------------------------------------------------------------

  void start_load() {
    int http = server_->http_port(), echo = server_->echo_port();
    for (auto [kind, port, threads] : {std::tuple{LoadClient::Kind::http_keepalive, http, mix_.keepalive},
                                       std::tuple{LoadClient::Kind::http_close, http, mix_.close},
                                       std::tuple{LoadClient::Kind::tcp_echo, echo, mix_.tcp_echo},
                                       std::tuple{LoadClient::Kind::udp_echo, echo, mix_.udp_echo}})
      if (threads > 0)
        load_.push_back(std::make_shared<LoadClient>(kind, "127.0.0.1", port, threads, 3600s, kAnswerTimeout));
  }

  void start_extra_load() {
    extra_.push_back(std::make_shared<LoadClient>(LoadClient::Kind::http_close, "127.0.0.1", extra_port_, 1, 3600s,
                                                  kAnswerTimeout));
  }

  void stop_extra_load() {
    if (!extra_.empty()) extra_.back()->stop();
  }

  void stop_load() {
    for (auto& l : load_) l->stop();
    for (auto& l : extra_) l->stop();
  }

  static const char* kind_name(LoadClient::Kind kind) {
    switch (kind) {
      case LoadClient::Kind::http_close: return "http close";
      case LoadClient::Kind::http_keepalive: return "http keep-alive";
      case LoadClient::Kind::tcp_echo: return "tcp echo";
      case LoadClient::Kind::udp_echo: return "udp echo";
    }
    return "?";
  }

  // QUIT closes the listeners: new connections are refused, and one that races
  // the close (queued after the worker's last accept) is reset before any answer;
  // datagrams to a closed socket go unanswered. A connection that had carried an
  // answer (keep-alive) must still get the answer to its request.
  static bool lost_to_quit(LoadClient::Kind kind, const LoadError& e) {
    if (kind == LoadClient::Kind::udp_echo) return true;
    if (e.what == ErrorClass::connect_refused || e.what == ErrorClass::connect_other) return true;
    return e.fresh_connection && (e.what == ErrorClass::reset || e.what == ErrorClass::send);
  }

  // Each error must fall in the window of a worker the test killed, and no window
  // may hold more errors than there are client threads (one request each in flight).
  void account_losses() {
    int threads = 0;
    long unattributed = 0, after_quit = 0, after_failure = 0;
    std::ostringstream figures, stray;
    figures << "[ figures  ] seed " << seed_ << ": " << done_.size() << " actions in "
            << std::chrono::duration_cast<Millis>(Clock::now() - started_).count() << " ms\n";
    auto all = load_;
    for (auto& l : extra_) all.push_back(l);
    for (auto& l : all) {
      threads += l->threads();
      figures << "[ figures  ]   " << kind_name(l->kind()) << ": " << l->summary() << "\n";
      for (const LoadError& e : l->error_log()) {
        if (quit_at_ && e.when >= *quit_at_ && lost_to_quit(l->kind(), e)) {
          ++after_quit;
          continue;
        }
        if (failed_at_ && e.when >= *failed_at_) {
          ++after_failure;
          continue;
        }
        // The latest kill whose window covers the error: actions run back to
        // back, so a request in flight at a SIGSTOP (which lasts worker_timeout)
        // may have started inside the previous kill's window, and charging it to
        // that one would overflow its bound while the SIGSTOP's stayed empty.
        auto w = std::find_if(windows_.rbegin(), windows_.rend(),
                              [&](const KillWindow& k) { return k.covers(e); });
        if (w != windows_.rend()) ++w->attributed;
        else if (++unattributed <= 20)
          stray << "  " << kind_name(l->kind()) << " at " << since_start(e.when) << ", begun "
                << since_start(e.started) << " (" << step_at(e.when)
                << "): " << to_string(e.what) << ": " << e.detail << "\n";
      }
    }
    long allowed = 0;
    for (const auto& w : windows_) {
      figures << "[ figures  ]   " << w.what << ": " << w.attributed << " error(s) in its window (bound " << threads
              << ")\n";
      allowed += w.attributed;
      if (w.attributed > threads)
        fail(w.what + ": " + std::to_string(w.attributed) + " errors, more than the " + std::to_string(threads) +
             " client threads");
    }
    figures << "[ figures  ]   errors allowed: " << allowed << " in kill windows, " << after_quit
            << " refused or datagrams lost after QUIT; unattributed " << unattributed << "; after the first failure "
            << after_failure << "\n";
    std::cout << figures.str();
    if (unattributed != 0)
      fail(std::to_string(unattributed) + " client error(s) outside any kill window:\n" + stray.str() +
           "  (steps began at " + step_times() + (quit_at_ ? "; QUIT at " + since_start(*quit_at_) : "") +
           "; +0 ms is " + utc_time(started_wall_) + " in the server log)");
  }

  void finish() {
    if (!ok_ && server_) {
      static int failures = 0;
      std::string saved = "/tmp/preforkd-torture-" + std::to_string(getpid()) + "-" + std::to_string(++failures) +
                          "-seed-" + std::to_string(seed_) + ".log";
      write_file(saved, server_->log());
      failure_ += "\n  whole log: " + saved;
    }
    if (!ok_) {
      ADD_FAILURE() << "torture seed " << seed_ << " failed: " << failure_ << "\n  actions: " << describe(done_)
                    << "\n  replay: PREFORKD_TORTURE_SEED=" << seed_ << " (or run_actions(\"" << describe(done_)
                    << "\"))\n  log tail:\n"
                    << tail(server_ ? server_->log() : "", 6000);
    }
    load_.clear();
    extra_.clear();
    server_.reset();  // kills whatever is left and scans the log for sanitizer reports
    // Workers orphaned by a master that went (USR2, or killed at the end) were
    // reparented to us, the subreaper: reap them, or a long run piles up zombies.
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
    }
  }

  // As the server log writes it: 2026-12-02T21:50:39.441Z.
  static std::string utc_time(std::chrono::system_clock::time_point t) {
    auto ms = std::chrono::duration_cast<Millis>(t.time_since_epoch()).count();
    std::time_t seconds = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&seconds, &tm);
    char text[64];
    std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
    return text;
  }

  std::string since_start(Clock::time_point t) const {
    return "+" + std::to_string(std::chrono::duration_cast<Millis>(t - started_).count()) + " ms";
  }

  // "step N action": the step under way at t, so a loss points at its action.
  std::string step_at(Clock::time_point t) const {
    auto after = std::upper_bound(step_started_.begin(), step_started_.end(), t);
    if (after == step_started_.begin()) return "before the first step";
    auto i = static_cast<std::size_t>(after - step_started_.begin()) - 1;
    std::string where = "step " + std::to_string(i + 1) + " " + done_[i].text();
    return quit_at_ && t >= *quit_at_ ? "after QUIT" : where;
  }

  std::string step_times() const {
    std::string out;
    for (std::size_t i = 0; i < done_.size(); ++i)
      out += (i ? ", " : "") + done_[i].text() + " " + since_start(step_started_[i]);
    return out;
  }

  static std::string tail(const std::string& text, std::size_t n) {
    return text.size() > n ? text.substr(text.size() - n) : text;
  }

  bool fail(std::string why) {
    if (server_ && !quit_at_ && process_gone(server_->master_pid()))
      why += " (the master " + std::to_string(server_->master_pid()) + " is gone)";
    if (ok_) {
      failure_ = why;
      failed_at_ = Clock::now();
    } else {
      failure_ += "; then: " + why;
    }
    ok_ = false;
    return false;
  }

  std::uint64_t seed_;
  std::mt19937_64 random_;
  Mix mix_;
  bool quit_in_recycle_ = false;
  std::unique_ptr<Preforkd> server_;
  std::string base_config_;
  Model model_;
  int extra_port_ = 0;
  std::vector<Step> done_;
  std::vector<Clock::time_point> step_started_;
  std::vector<std::shared_ptr<LoadClient>> load_, extra_;
  std::vector<KillWindow> windows_;
  std::set<pid_t> seen_pids_;
  long kills_ = 0;
  Clock::time_point started_;
  std::chrono::system_clock::time_point started_wall_;  // +0 on the server log's clock
  std::optional<Clock::time_point> quit_at_;
  std::optional<Clock::time_point> failed_at_;  // errors after the first failure are its consequence
  bool ok_ = true;
  bool verbose_ = false;
  std::string failure_;
};

inline std::vector<Step> parse_actions(const std::string& text) {
  std::vector<Step> steps;
  std::istringstream in(text);
  for (std::string word; in >> word;) {
    auto eq = word.find('=');
    steps.push_back({word.substr(0, eq), eq == std::string::npos ? 0 : std::atol(word.c_str() + eq + 1)});
  }
  return steps;
}

// Replays an action list as printed by a failure ("ttin winch_hup hup_workers=3 ...").
inline bool run_actions(const std::string& actions, Mix mix = {}) {
  Torture torture(0, mix);
  torture.set_verbose(true);
  return torture.run(0, parse_actions(actions));
}


}  // namespace itest::torture
