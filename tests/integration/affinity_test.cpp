// worker_cpu_affinity = "auto" with the real binary: every slot's worker pinned to
// its CPU (the master's allowed CPUs in turn) through respawns, TTIN, reloads and
// spares, nothing pinned once a reload turns it off, and nothing lost to reloads
// and scaling under load while connections are steered by CPU.
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/harness.hpp"
#include "tests/integration/load_client.hpp"
#include "tests/integration/wrk.hpp"

using namespace itest;

namespace {

const std::string kAuto = "worker_cpu_affinity = \"auto\"\n";

// The CPUs the test may run on, ascending: the master inherits them.
std::vector<int> our_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  EXPECT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  return cpus;
}

std::string as_list(const std::vector<int>& cpus) {
  std::string text;
  for (int cpu : cpus) text += (text.empty() ? "" : ",") + std::to_string(cpu);
  return text;
}

// The CPUs pid may run on, as the kernel reports them ("0-1" becomes "0,1").
std::string allowed_of(pid_t pid) {
  std::string status = read_file("/proc/" + std::to_string(pid) + "/status");
  std::smatch m;
  if (!std::regex_search(status, m, std::regex("Cpus_allowed_list:\\s*([0-9,-]+)"))) return "?";
  std::vector<int> cpus;
  std::string list = m[1];
  for (std::size_t at = 0; at < list.size();) {
    std::size_t end = list.find(',', at);
    if (end == std::string::npos) end = list.size();
    std::string range = list.substr(at, end - at);
    auto dash = range.find('-');
    int first = std::stoi(range), last = dash == std::string::npos ? first : std::stoi(range.substr(dash + 1));
    for (int cpu = first; cpu <= last; ++cpu) cpus.push_back(cpu);
    at = end + 1;
  }
  return as_list(cpus);
}

// pid -> slot, from the master's "slot N: worker PID of generation G ready" lines.
std::map<pid_t, int> slots_in_log(const std::string& log) {
  std::map<pid_t, int> slots;
  std::regex ready("slot ([0-9]+): worker ([0-9]+) of generation [0-9]+ ready");
  for (std::sregex_iterator it(log.begin(), log.end(), ready), end; it != end; ++it)
    slots[static_cast<pid_t>(std::stol((*it)[2]))] = std::stoi((*it)[1]);
  return slots;
}

// Waits (bounded) until `workers` workers run and each has reported ready.
bool wait_ready(const Preforkd& server, std::size_t workers) {
  auto deadline = std::chrono::steady_clock::now() + 15s;
  while (std::chrono::steady_clock::now() < deadline) {
    std::map<pid_t, int> slots = slots_in_log(server.log());
    std::vector<pid_t> pids = server.worker_pids();
    if (pids.size() == workers && std::all_of(pids.begin(), pids.end(), [&](pid_t p) { return slots.count(p) > 0; }))
      return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

// Every live worker runs on its slot's CPU (pinned) or, unpinned, on all of ours.
void expect_workers_on(const Preforkd& server, bool pinned, std::size_t workers) {
  const std::vector<int> cpus = our_cpus();
  std::map<pid_t, int> slots = slots_in_log(server.log());
  std::vector<pid_t> pids = server.worker_pids();
  EXPECT_EQ(pids.size(), workers) << server.log();
  for (pid_t pid : pids) {
    ASSERT_TRUE(slots.count(pid)) << "worker " << pid << " never reported ready\n" << server.log();
    int slot = slots[pid];
    std::string expected = pinned ? std::to_string(cpus[static_cast<std::size_t>(slot) % cpus.size()]) : as_list(cpus);
    EXPECT_EQ(allowed_of(pid), expected) << "worker " << pid << " of slot " << slot;
  }
  EXPECT_EQ(allowed_of(server.master_pid()), as_list(cpus)) << "the master itself is never pinned";
  for (pid_t spare : spares_of(server.master_pid()))
    EXPECT_EQ(allowed_of(spare), as_list(cpus)) << "spare " << spare << " is pinned before it has a slot";
}

// After a HUP: the new generation's worker count, once all are ready; 0 if never.
std::size_t reloaded(const Preforkd& server, unsigned generation) {
  const std::string needle = "generation " + std::to_string(generation) + ": all ";
  if (!server.wait_log(needle, 10s)) return 0;
  std::string log = server.log();
  return std::stoul(log.substr(log.find(needle) + needle.size()));
}

}  // namespace

TEST(CpuAffinity, EachSlotsWorkerRunsOnItsCpuThroughRespawnsScalingAndReloads) {
  Preforkd server({.workers = 2, .top_config = kAuto});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  ASSERT_TRUE(server.wait_log("each to a slot on its CPU", 5s)) << "no CPU steering program\n" << server.log();
  expect_workers_on(server, true, 2);

  ASSERT_TRUE(server.signal(SIGTTIN));  // slot 2: the first CPU again
  ASSERT_TRUE(wait_ready(server, 3)) << server.log();
  expect_workers_on(server, true, 3);

  std::map<pid_t, int> slots = slots_in_log(server.log());
  pid_t victim = 0;
  for (pid_t pid : server.worker_pids())
    if (slots[pid] == 1) victim = pid;
  ASSERT_GT(victim, 0);
  ASSERT_EQ(kill(victim, SIGKILL), 0);  // its replacement, a spare, gets slot 1's CPU
  ASSERT_TRUE(wait_gone(victim, 5s));
  ASSERT_TRUE(wait_ready(server, 3)) << server.log();
  expect_workers_on(server, true, 3);

  ASSERT_TRUE(server.signal(SIGHUP));
  std::size_t workers = reloaded(server, 2);
  ASSERT_GT(workers, 0u) << server.log();
  ASSERT_TRUE(wait_ready(server, workers)) << server.log();
  expect_workers_on(server, true, workers);

  // Turned off by a reload: the new generation runs wherever the master may.
  write_file(server.config_path(), std::regex_replace(read_file(server.config_path()), std::regex("\"auto\""), "\"off\""));
  ASSERT_TRUE(server.signal(SIGHUP));
  workers = reloaded(server, 3);
  ASSERT_GT(workers, 0u) << server.log();
  ASSERT_TRUE(wait_ready(server, workers)) << server.log();
  expect_workers_on(server, false, workers);
}

// Steered by CPU, a reload still retires a slot only once its successor serves,
// and TTOU's slot is steered away before it closes: nothing may be lost.
TEST(CpuAffinity, ReloadsAndScalingLoseNothingWhileConnectionsAreSteeredByCpu) {
  Preforkd server({.workers = 2, .top_config = kAuto});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  LoadClient close(LoadClient::Kind::http_close, "127.0.0.1", server.http_port(), 2);
  LoadClient udp(LoadClient::Kind::udp_echo, "127.0.0.1", server.echo_port(), 1);
  Wrk keepalive(server.http_port(), 32, 6, /*keep_alive=*/true, server.dir());
  for (int round = 0; round < 2; ++round)
    ASSERT_TRUE(reload_and_scale(server, 2, 3, &why)) << why;
  close.stop();
  udp.stop();
  ASSERT_TRUE(keepalive.finish()) << keepalive.output();
  EXPECT_GT(close.ok(), 100) << close.summary();
  EXPECT_EQ(close.errors(), 0) << close.error_sample();
  EXPECT_GT(udp.ok(), 100) << udp.summary();
  EXPECT_EQ(udp.errors(), 0) << udp.error_sample();
  EXPECT_GT(keepalive.requests(), 1000) << keepalive.output();
  EXPECT_EQ(keepalive.socket_errors(), 0) << keepalive.output();
  EXPECT_EQ(keepalive.non_2xx(), 0) << keepalive.output();
  expect_workers_on(server, true, 2);
}
