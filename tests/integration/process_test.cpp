// The process model with the real binary: master and workers, per-worker sockets,
// spreading, stop signals, supervision, the pid file and the control CLI.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "tests/integration/harness.hpp"

using namespace itest;

namespace {

std::string cmdline_of(pid_t pid) {
  std::string raw = read_file("/proc/" + std::to_string(pid) + "/cmdline");
  std::replace(raw.begin(), raw.end(), '\0', ' ');
  return raw;
}

class WorkerCount : public ::testing::TestWithParam<int> {};

TEST_P(WorkerCount, StartsExactlyNWorkersAndWritesThePidFile) {
  Preforkd server({.workers = GetParam()});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  EXPECT_EQ(read_file(server.pid_file()), std::to_string(server.master_pid()) + "\n");
  auto workers = server.worker_pids();
  ASSERT_EQ(workers.size(), static_cast<std::size_t>(GetParam()));
  std::set<std::string> slots;
  for (pid_t w : workers) {
    std::string cmd = cmdline_of(w);
    EXPECT_NE(cmd.find("preforkd: worker"), std::string::npos) << cmd;
    EXPECT_NE(cmd.find("--generation 1"), std::string::npos) << cmd;
    slots.insert(cmd.substr(cmd.find("--slot ")));
  }
  EXPECT_EQ(slots.size(), workers.size()) << "every worker has its own slot";
  // The log names slot and generation on every worker line.
  for (int slot = 0; slot < GetParam(); ++slot)
    EXPECT_TRUE(server.wait_log("worker slot=" + std::to_string(slot) + " gen=1: serving", 2s)) << server.log();
}

// Each worker holds its own listening socket for each listener: N distinct sockets
// on the port (as ss -ltnp would show), one per worker, none in the master.
TEST_P(WorkerCount, EveryWorkerOwnsItsOwnListeningSockets) {
  bool v6 = ipv6_loopback_available();
  Preforkd server({.workers = GetParam(), .ipv6 = v6});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  auto workers = server.worker_pids();
  ASSERT_EQ(workers.size(), static_cast<std::size_t>(GetParam()));

  struct Case {
    std::string proc_file;
    int port;
    bool listening;
  };
  std::vector<Case> cases = {{"/proc/net/tcp", server.http_port(), true},
                             {"/proc/net/tcp", server.echo_port(), true},
                             {"/proc/net/udp", server.echo_port(), false}};
  if (v6) {
    cases.push_back({"/proc/net/tcp6", server.http6_port(), true});
    cases.push_back({"/proc/net/udp6", server.echo6_port(), false});
  }
  // The master keeps a copy of every slot's sockets (to hand them to the next
  // generation) but never polls or accepts on them.
  auto master_sockets = socket_inodes_of(server.master_pid());
  for (const auto& c : cases) {
    auto inodes = socket_inodes(c.proc_file, c.port, c.listening);
    std::set<unsigned long> distinct(inodes.begin(), inodes.end());
    EXPECT_EQ(distinct.size(), workers.size()) << c.proc_file << " port " << c.port;
    std::set<unsigned long> owned;
    for (pid_t w : workers) {
      auto mine = socket_inodes_of(w);
      int count = 0;
      for (unsigned long inode : mine)
        if (distinct.count(inode)) {
          ++count;
          owned.insert(inode);
        }
      EXPECT_EQ(count, 1) << "worker " << w << " on " << c.proc_file << " port " << c.port;
    }
    EXPECT_EQ(owned, distinct) << "each socket belongs to a different worker";
    std::size_t held_by_master = 0;
    for (unsigned long inode : master_sockets) held_by_master += distinct.count(inode);
    EXPECT_EQ(held_by_master, distinct.size()) << "the master holds each slot's socket for handover";
  }
  if (!v6) GTEST_SKIP() << "IPv6 loopback (::1) is not available here; IPv4 sockets were checked";
}

INSTANTIATE_TEST_SUITE_P(Workers, WorkerCount, ::testing::Values(2, 4));

// Starting workers get a higher priority (nice -10) until they report ready, so a
// reload under load is not starved by the busy old generation; serving workers
// must be back at the master's own priority.
TEST(Process, ReadyWorkersRunAtNormalPriority) {
  Preforkd server({.workers = 2});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  auto nice_of = [](pid_t pid) { return std::stoi(proc_stat_field(pid, 19)); };
  int master_nice = nice_of(server.master_pid());
  for (pid_t w : server.worker_pids()) EXPECT_EQ(nice_of(w), master_nice) << "worker " << w;
  ASSERT_TRUE(server.signal(SIGHUP));
  ASSERT_TRUE(server.wait_log("generation 2: all 2 workers ready", 10s)) << server.log();
  ASSERT_TRUE(server.wait_workers(2, 10s)) << server.log();
  for (pid_t w : server.worker_pids()) EXPECT_EQ(nice_of(w), master_nice) << "worker " << w;
}

// reuseport = false: one socket, held by the master and every worker, and kept
// across a reload (the shared-socket baseline bench/ compares against).
TEST(Process, SharedListenerIsOneSocketHeldByEveryWorker) {
  int port = free_port();
  Preforkd server({.workers = 3,
                   .extra_config = "\n[[listen]]\nname = \"shared\"\naddress = \"127.0.0.1:" + std::to_string(port) +
                                   "\"\nprotocol = \"tcp-echo\"\nreuseport = false\n"});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  auto workers = server.worker_pids();
  ASSERT_EQ(workers.size(), 3u);
  auto inodes = socket_inodes("/proc/net/tcp", port, true);
  ASSERT_EQ(inodes.size(), 1u) << "one listening socket on port " << port;
  for (pid_t w : workers) {
    auto mine = socket_inodes_of(w);
    EXPECT_EQ(std::count(mine.begin(), mine.end(), inodes[0]), 1) << "worker " << w;
  }
  auto echo_once = [&] {
    int fd = connect_tcp("127.0.0.1", port);
    if (fd < 0) return std::string("connect failed");
    bool sent = send_all(fd, "ping");
    shutdown(fd, SHUT_WR);  // tcp-echo closes after echoing everything it got
    std::string answer = sent ? read_until_close(fd) : "send failed";
    close(fd);
    return answer;
  };
  EXPECT_EQ(echo_once(), "ping");
  ASSERT_TRUE(server.signal(SIGHUP));
  ASSERT_TRUE(server.wait_log("generation 2: all 3 workers ready", 10s)) << server.log();
  EXPECT_EQ(socket_inodes("/proc/net/tcp", port, true), inodes) << "the reload kept the shared socket";
  EXPECT_EQ(echo_once(), "ping");
}

// 200 short connections: the kernel's reuseport hash gives every worker some.
// Counted by the workers themselves (their exit line) after a graceful stop.
TEST(Process, ConnectionsAreSpreadAcrossWorkers) {
  Preforkd server({.workers = 4});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  auto workers = server.worker_pids();
  ASSERT_EQ(workers.size(), 4u);
  for (int i = 0; i < 200; ++i) {
    auto response = http_get(server.http_port(), "/hello.txt");
    ASSERT_TRUE(response) << "request " << i;
    ASSERT_EQ(response->status, 200);
  }
  ASSERT_TRUE(server.signal(SIGQUIT));
  ASSERT_EQ(server.wait_exit(10s), std::optional<int>(0)) << server.log();
  std::string log = server.log();
  std::regex exit_line(R"((\d+) worker slot=\d+ gen=\d+: exiting: accepted=(\d+) requests=(\d+))");
  std::map<pid_t, int> accepted;
  for (std::sregex_iterator it(log.begin(), log.end(), exit_line), end; it != end; ++it)
    accepted[std::stoi((*it)[1])] = std::stoi((*it)[2]);
  int total = 0;
  for (pid_t w : workers) {
    ASSERT_TRUE(accepted.count(w)) << "no exit line for worker " << w << "\n" << log;
    EXPECT_GT(accepted[w], 0) << "worker " << w << " served nothing";
    total += accepted[w];
  }
  EXPECT_EQ(total, 200);
}

// QUIT: workers stop accepting but an in-flight request (headers half sent) is
// answered in full, with Connection: close, before the worker exits.
TEST(Process, QuitLetsAnInFlightRequestFinish) {
  Preforkd server({.workers = 2});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  int fd = connect_tcp("127.0.0.1", server.http_port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, "GET /hello.txt HTTP/1.1\r\nHost: test\r\n"));
  std::this_thread::sleep_for(100ms);  // let the worker accept and read the first half
  ASSERT_TRUE(server.signal(SIGQUIT));
  // Each worker's line after its listener closed ("retiring" alone also matches
  // the master's start-up line about steering, and then one worker was enough).
  ASSERT_TRUE(server.wait_log("connection(s) to finish", 5s, 2)) << server.log();
  // While draining, new connections are no longer accepted.
  int late = connect_tcp("127.0.0.1", server.http_port(), 1s);
  EXPECT_LT(late, 0) << "a new connection was accepted during a graceful stop";
  if (late >= 0) close(late);
  EXPECT_TRUE(server.worker_pids().size() >= 1) << "the worker with the open request is still there";
  ASSERT_TRUE(send_all(fd, "\r\n"));
  std::string carry;
  auto response = read_response(fd, &carry);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "hello from preforkd\n");
  EXPECT_EQ(response->header("Connection"), "close");
  EXPECT_EQ(read_until_close(fd, 3s), "") << "the connection is closed after the response";
  close(fd);
  EXPECT_EQ(server.wait_exit(10s), std::optional<int>(0)) << server.log();
  EXPECT_EQ(read_file(server.pid_file()), "") << "the pid file is removed on exit";
}

// QUIT with a client that never finishes its request: killed after graceful_timeout.
TEST(Process, QuitKillsWorkersStillBusyAfterGracefulTimeout) {
  Preforkd server({.workers = 2, .graceful_timeout = 1});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  int fd = connect_tcp("127.0.0.1", server.echo_port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, "ping"));
  EXPECT_EQ(read_until_close(fd, 300ms), "ping");
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(server.signal(SIGQUIT));
  auto code = server.wait_exit(10s);
  auto elapsed = std::chrono::steady_clock::now() - start;
  close(fd);
  ASSERT_EQ(code, std::optional<int>(0)) << server.log();
  EXPECT_GE(elapsed, 900ms) << "the open echo session was given its graceful time";
  EXPECT_TRUE(server.wait_log("stop timeout: killing 1 worker", 1s)) << server.log();
}

TEST(Process, TermStopsEverything) {
  Preforkd server({.workers = 2});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  auto workers = server.worker_pids();
  int idle = connect_tcp("127.0.0.1", server.http_port());  // an idle keep-alive client must not delay it
  ASSERT_GE(idle, 0);
  ASSERT_TRUE(server.signal(SIGTERM));
  EXPECT_EQ(server.wait_exit(5s), std::optional<int>(0)) << server.log();
  for (pid_t w : workers) EXPECT_TRUE(wait_gone(w, 2s)) << "worker " << w;
  EXPECT_EQ(read_file(server.pid_file()), "");
  close(idle);
  EXPECT_LT(connect_tcp("127.0.0.1", server.http_port(), 1s), 0);
}

TEST(Process, KilledWorkerIsReplaced) {
  Preforkd server({.workers = 2});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  auto before = server.worker_pids();
  ASSERT_EQ(before.size(), 2u);
  pid_t victim = before[0];
  ASSERT_EQ(kill(victim, SIGKILL), 0);
  ASSERT_TRUE(wait_gone(victim, 2s));
  ASSERT_TRUE(server.wait_log("exited unexpectedly (signal 9", 2s)) << server.log();
  ASSERT_TRUE(server.wait_log("of generation 1 ready", 5s, 3)) << server.log();
  auto after = server.worker_pids();
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(std::count(after.begin(), after.end(), victim), 0);
  EXPECT_EQ(std::count(after.begin(), after.end(), before[1]), 1) << "the other worker was left alone";
  for (int i = 0; i < 20; ++i) {
    auto response = http_get(server.http_port(), "/hello.txt");
    ASSERT_TRUE(response && response->status == 200) << "request " << i;
  }
}

TEST(Process, KillingTheMasterTakesTheWorkersDownWithinTwoSeconds) {
  Preforkd server({.workers = 2});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  auto workers = server.worker_pids();
  ASSERT_EQ(workers.size(), 2u);
  ASSERT_TRUE(server.signal(SIGKILL));
  ASSERT_TRUE(server.wait_exit(2s));
  for (pid_t w : workers) EXPECT_TRUE(wait_gone(w, 2s)) << "worker " << w << " outlived its master";
}

TEST(Process, ControlCommandsSignalTheMasterThroughThePidFile) {
  Preforkd server({.workers = 2});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  std::string output;
  EXPECT_EQ(server.run_cli("-s quit", &output), 0) << output;
  EXPECT_EQ(server.wait_exit(10s), std::optional<int>(0)) << server.log();
  EXPECT_TRUE(server.wait_log("received Quit", 1s)) << server.log();
  // No master any more: a clear error and exit status 1.
  EXPECT_EQ(server.run_cli("-s reload", &output), 1);
  EXPECT_NE(output.find("no running master"), std::string::npos) << output;
  // A stale pid file (a pid that is not a preforkd) is refused, not signalled.
  write_file(server.pid_file(), std::to_string(getpid()) + "\n");
  EXPECT_EQ(server.run_cli("-s stop", &output), 1);
  EXPECT_NE(output.find("stale pid file"), std::string::npos) << output;
  EXPECT_EQ(server.run_cli("-s bogus", &output), 2) << output;
  EXPECT_NE(output.find("unknown action"), std::string::npos) << output;
}

TEST(Process, ControlStopIsAFastStop) {
  Preforkd server({.workers = 2});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  std::string output;
  EXPECT_EQ(server.run_cli("-s stop", &output), 0) << output;
  EXPECT_EQ(server.wait_exit(5s), std::optional<int>(0)) << server.log();
  EXPECT_TRUE(server.wait_log("fast stop", 1s)) << server.log();
}

TEST(Process, ASecondMasterRefusesToStartOnTheSamePidFile) {
  Preforkd server({.workers = 1});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  std::string output;
  EXPECT_EQ(server.run_cli("", &output), 1) << output;
  EXPECT_NE(output.find("already running"), std::string::npos) << output;
  EXPECT_EQ(read_file(server.pid_file()), std::to_string(server.master_pid()) + "\n");
}

TEST(Process, ConfigTestReportsFileLineAndColumn) {
  Preforkd server({.workers = 1});
  std::string output;
  EXPECT_EQ(server.run_cli("-t", &output), 0) << output;
  EXPECT_NE(output.find("test is successful"), std::string::npos) << output;
  write_file(server.config_path(), "bogus_key = 1\n" + read_file(server.config_path()));
  EXPECT_EQ(server.run_cli("-t", &output), 1);
  EXPECT_NE(output.find(server.config_path() + ":"), std::string::npos) << output;
  EXPECT_NE(output.find("preforkd.toml:1:1: bogus_key: unknown key"), std::string::npos) << output;
  EXPECT_NE(output.find("test failed"), std::string::npos) << output;
  // The server refuses to start on it, with the same message, and leaves no pid file.
  EXPECT_EQ(server.run_cli("", &output), 1);
  EXPECT_NE(output.find("bogus_key"), std::string::npos) << output;
  EXPECT_EQ(read_file(server.pid_file()), "");
}

// A port already taken (without SO_REUSEPORT) fails the start at once, with the
// error, rather than leaving workers to fail one by one.
TEST(Process, AListenerThatCannotBindFailsTheStart) {
  int blocker = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int port = free_port();
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(blocker, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(listen(blocker, 1), 0);
  Preforkd server({.workers = 1,
                   .extra_config = "\n[[listen]]\nname = \"taken\"\naddress = \"127.0.0.1:" + std::to_string(port) +
                                   "\"\nprotocol = \"tcp-echo\"\n"});
  std::string why;
  EXPECT_FALSE(server.start(2s, &why));
  EXPECT_EQ(server.wait_exit(5s), std::optional<int>(1)) << server.log();
  EXPECT_NE(server.log().find("listener taken: bind 127.0.0.1:" + std::to_string(port) + ": Address already in use"),
            std::string::npos)
      << server.log();
  EXPECT_EQ(read_file(server.pid_file()), "");
  close(blocker);
}

}  // namespace
