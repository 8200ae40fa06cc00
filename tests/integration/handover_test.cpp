// upgrade_handover = "manual": the rollback window after USR2, with the real
// binary under real clients (wrk keep-alive and `Connection: close`, plus
// clients that check every response and datagram, and curl at each step). Completing (QUIT to the old
// master) and rolling back (HUP to the old master, QUIT to the new) must lose
// nothing; so must the sequences around them: rollback then upgrade again, QUIT
// to the new master without a HUP to the old, TERM to either, and masters with
// different worker counts on the same reuseport groups. After each step: pids,
// generations, the pid file and .oldbin, the control socket, every response.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <memory>
#include <regex>
#include <thread>

#include "tests/integration/busy_port.hpp"
#include "tests/integration/harness.hpp"
#include "tests/integration/load_client.hpp"
#include "tests/integration/unix_client.hpp"
#include "tests/integration/upgrade_checks.hpp"
#include "tests/integration/wrk.hpp"

using namespace itest;

namespace {

constexpr const char* kManual = "upgrade_handover = \"manual\"\n";

std::string control_path(const Preforkd& server) { return server.dir() + "/preforkd.sock"; }

// The master named in `preforkd status` (through the control socket at its path).
pid_t status_master(const Preforkd& server) {
  std::string out;
  if (server.run_cli("status", &out) != 0) return 0;
  std::smatch m;
  return std::regex_search(out, m, std::regex("^master (\\d+),")) ? std::stoi(m[1]) : 0;
}

// Workers of `master` that run generation `generation`, from their command lines.
std::size_t workers_of_generation(pid_t master, unsigned generation) {
  const std::string needle = std::string("--generation\0", 13) + std::to_string(generation) + '\0';
  std::size_t n = 0;
  for (pid_t w : children_of(master))
    n += read_file("/proc/" + std::to_string(w) + "/cmdline").find(needle) != std::string::npos;
  return n;
}

// What curl, a client the test did not write, gets for /hello.txt: "200 hello from preforkd".
std::string curl(const Preforkd& server) {
  std::string out;
  run_command("curl -sS --max-time 5 -w ' %{http_code}' http://127.0.0.1:" + std::to_string(server.http_port()) +
                  "/hello.txt",
              &out);
  return out;
}
constexpr const char* kCurlOk = "hello from preforkd\n 200";

// Waits until `master`'s only child is `child` (its workers are gone: it is parked).
bool wait_parked(pid_t master, pid_t child, Millis timeout) {
  for (auto deadline = std::chrono::steady_clock::now() + timeout; std::chrono::steady_clock::now() < deadline;
       std::this_thread::sleep_for(20ms))
    if (children_of(master) == std::vector<pid_t>{child}) return true;
  return false;
}

// Every client of a test: two wrk (keep-alive, close) and three checking clients.
class Load {
 public:
  // answer_timeout: how long the checking clients wait for an answer before they
  // count it lost (zero: their defaults, 5 s for TCP, 2 s for a datagram).
  Load(const Preforkd& server, int seconds, Millis answer_timeout = 0ms)
      : keep_alive_(server.http_port(), 32, seconds, /*keep_alive=*/true, server.dir()),
        closing_(server.http_port(), 16, seconds, /*keep_alive=*/false, server.dir()),
        http_(LoadClient::Kind::http_close, "127.0.0.1", server.http_port(), 2, 120s, answer_timeout),
        keep_(LoadClient::Kind::http_keepalive, "127.0.0.1", server.http_port(), 2, 120s, answer_timeout),
        udp_(LoadClient::Kind::udp_echo, "127.0.0.1", server.echo_port(), 1, 120s, answer_timeout) {}

  // Stops the checking clients, waits for wrk, prints the figures and expects
  // no failure anywhere.
  void expect_nothing_lost(const std::string& what, const Preforkd& server) {
    http_.stop();
    keep_.stop();
    udp_.stop();
    ASSERT_TRUE(keep_alive_.finish()) << keep_alive_.output();
    ASSERT_TRUE(closing_.finish()) << closing_.output();
    std::cout << "[ figures  ] " << what << ": wrk keep-alive " << keep_alive_.requests() << " requests / "
              << keep_alive_.socket_errors() << " socket errors / " << keep_alive_.non_2xx() << " non-2xx; wrk close "
              << closing_.requests() << " / " << closing_.socket_errors() << " / " << closing_.non_2xx()
              << "; checked http close " << http_.ok() << " ok / " << http_.errors() << " failed, keep-alive "
              << keep_.ok() << " / " << keep_.errors() << ", udp " << udp_.ok() << " / " << udp_.errors() << "\n";
    EXPECT_EQ(keep_alive_.socket_errors() + keep_alive_.non_2xx(), 0) << keep_alive_.output() << server.log();
    EXPECT_EQ(closing_.socket_errors() + closing_.non_2xx(), 0) << closing_.output();
    EXPECT_EQ(http_.errors(), 0) << http_.error_sample();
    EXPECT_EQ(keep_.errors(), 0) << keep_.error_sample();
    EXPECT_EQ(udp_.errors(), 0) << udp_.error_sample();
    EXPECT_GT(keep_alive_.requests(), 1000) << keep_alive_.output();
    EXPECT_GT(http_.ok(), 100);
  }

 private:
  Wrk keep_alive_, closing_;
  LoadClient http_, keep_, udp_;
};

// USR2 in manual mode: returns the new master once it serves and the old one is
// parked, having checked the window's state: PID_FILE names the new master and
// PID_FILE.oldbin the old one, the control socket at its path is the new
// master's, the old master's moved aside.
pid_t enter_window(Preforkd& server, pid_t old_master, std::size_t nth = 1) {
  if (!server.signal(SIGUSR2)) return 0;
  pid_t fresh = successor_of(server, nth);
  EXPECT_GT(fresh, 0) << server.log();
  if (fresh <= 0) return 0;
  EXPECT_TRUE(server.wait_log(std::to_string(old_master) + " master: upgrade: new master " + std::to_string(fresh) +
                                  " serves (upgrade_handover = \"manual\")",
                              15s))
      << server.log();
  EXPECT_TRUE(wait_parked(old_master, fresh, 15s)) << "the old master's workers did not retire\n" << server.log();
  EXPECT_EQ(pid_in_file(server.pid_file()), fresh);
  EXPECT_EQ(pid_in_file(server.pid_file() + ".oldbin"), old_master);
  EXPECT_TRUE(exists(control_path(server) + ".oldbin"));
  EXPECT_EQ(status_master(server), fresh);
  EXPECT_EQ(workers_of_generation(fresh, 1), 2u) << server.log();
  EXPECT_EQ(curl(server), kCurlOk);
  return fresh;
}

// HUP to the parked old master, then QUIT to the new one: the old master serves
// alone again, with a new generation of its own configuration.
void roll_back(Preforkd& server, pid_t old_master, pid_t fresh, unsigned generation, std::size_t workers) {
  ASSERT_EQ(kill(old_master, SIGHUP), 0);
  ASSERT_TRUE(server.wait_log(std::to_string(old_master) + " master: generation " + std::to_string(generation) +
                                  ": all " + std::to_string(workers) + " workers ready",
                              15s))
      << server.log();
  ASSERT_EQ(kill(fresh, SIGQUIT), 0);
  ASSERT_TRUE(wait_gone(fresh, 20s)) << server.log();
  ASSERT_TRUE(server.wait_log(std::to_string(old_master) + " master: rollback complete", 5s)) << server.log();
  EXPECT_EQ(status_master(server), old_master);
  EXPECT_EQ(workers_of_generation(old_master, generation), workers);
  EXPECT_EQ(curl(server), kCurlOk);
}

// QUIT to the parked old master: the upgrade is complete.
void complete(Preforkd& server, pid_t fresh) {
  ASSERT_TRUE(server.signal(SIGQUIT));  // the harness still signals the old master
  ASSERT_EQ(server.wait_exit(15s), std::optional<int>(0)) << server.log();
  server.follow_master(fresh);
  ASSERT_TRUE(server.wait_log(std::to_string(fresh) + " master: upgrade complete", 5s)) << server.log();
  EXPECT_EQ(status_master(server), fresh);
  EXPECT_EQ(curl(server), kCurlOk);
}

// A manual-handover server with 2 workers, under Load, taken into the window:
// the new master serves, the old one is parked.
class HandoverUnderLoad : public ::testing::Test {
 protected:
  void enter_window_under_load(int load_seconds) {
    std::string why;
    ASSERT_TRUE(server_.start(10s, &why)) << why;
    old_master_ = server_.master_pid();
    load_ = std::make_unique<Load>(server_, load_seconds);
    std::this_thread::sleep_for(300ms);
    fresh_ = enter_window(server_, old_master_);
    ASSERT_GT(fresh_, 0);
  }
  Preforkd server_{{.workers = 2, .top_config = kManual}};
  pid_t old_master_ = 0;
  pid_t fresh_ = 0;
  std::unique_ptr<Load> load_;
};

TEST_F(HandoverUnderLoad, ManualCompletionUnderLoadLosesNothing) {
  enter_window_under_load(4);
  if (HasFatalFailure()) return;
  std::this_thread::sleep_for(500ms);  // the window, under load
  complete(server_, fresh_);
  load_->expect_nothing_lost("manual upgrade, completed (QUIT to the old master)", server_);
  expect_settled(server_, fresh_, 2);
}

TEST_F(HandoverUnderLoad, ManualRollbackUnderLoadLosesNothing) {
  enter_window_under_load(4);
  if (HasFatalFailure()) return;
  std::this_thread::sleep_for(500ms);
  roll_back(server_, old_master_, fresh_, 2, 2);
  load_->expect_nothing_lost("manual upgrade, rolled back (HUP to the old master, QUIT to the new)", server_);
  expect_settled(server_, old_master_, 2);
}

// After a rollback the old master is an ordinary master again: USR2 works, and
// this time the upgrade is completed. With [admin] on, `preforkd status` asks it,
// and it must always reach the serving master: the old one lets go of the admin
// address in the window and takes it again after the rollback.
TEST(Handover, RollbackThenUpgradeAgain) {
  int admin = free_port();
  Preforkd server({.workers = 2,
                   .extra_config = "\n[admin]\naddress = \"127.0.0.1:" + std::to_string(admin) + "\"\n",
                   .top_config = kManual});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  pid_t old_master = server.master_pid();
  LoadClient http(LoadClient::Kind::http_close, "127.0.0.1", server.http_port(), 2);
  pid_t first = enter_window(server, old_master, 1);
  ASSERT_GT(first, 0);
  roll_back(server, old_master, first, 2, 2);
  expect_settled(server, old_master, 2);
  pid_t second = enter_window(server, old_master, 2);
  ASSERT_GT(second, 0);
  EXPECT_NE(second, first);
  complete(server, second);
  http.stop();
  std::cout << "[ figures  ] rollback, then upgrade again: http " << http.ok() << " ok / " << http.errors()
            << " failed\n";
  EXPECT_EQ(http.errors(), 0) << http.error_sample();
  expect_settled(server, second, 2);
}

// QUIT to the new master without a HUP to the old one (the operator's choice):
// the old master, parked, brings its own workers back when the new one exits,
// as nginx's does. Connections that arrive in between wait in the sockets' queues
// (the old master holds every one), so nothing is lost; they see latency.
TEST_F(HandoverUnderLoad, QuitToTheNewMasterAloneBringsTheOldWorkersBackLosingNothing) {
  enter_window_under_load(4);
  if (HasFatalFailure()) return;
  std::this_thread::sleep_for(300ms);
  ASSERT_EQ(kill(fresh_, SIGQUIT), 0);
  ASSERT_TRUE(wait_gone(fresh_, 20s)) << server_.log();
  ASSERT_TRUE(server_.wait_log(std::to_string(old_master_) + " master: upgrade rolled back: new master " +
                                  std::to_string(fresh_) + " exited",
                              5s))
      << server_.log();
  ASSERT_TRUE(server_.wait_log(std::to_string(old_master_) + " master: generation 2: all 2 workers ready", 10s))
      << server_.log();
  load_->expect_nothing_lost("manual upgrade, QUIT to the new master without HUP to the old", server_);
  expect_settled(server_, old_master_, 2);
}

// TERM to the parked old master completes the upgrade as QUIT does (it has no
// worker to stop fast); TERM to the new master is its fast stop (what it serves
// at that instant is cut), after which the old master resumes by itself.
TEST_F(HandoverUnderLoad, TermToTheOldMasterInTheWindowCompletesTheUpgrade) {
  enter_window_under_load(3);
  if (HasFatalFailure()) return;
  ASSERT_TRUE(server_.signal(SIGTERM));
  ASSERT_EQ(server_.wait_exit(10s), std::optional<int>(0)) << server_.log();
  server_.follow_master(fresh_);
  ASSERT_TRUE(server_.wait_log(std::to_string(fresh_) + " master: upgrade complete", 5s)) << server_.log();
  load_->expect_nothing_lost("manual upgrade, TERM to the parked old master", server_);
  expect_settled(server_, fresh_, 2);
}

TEST(Handover, TermToTheNewMasterInTheWindowBringsTheOldWorkersBack) {
  Preforkd server({.workers = 2, .top_config = kManual});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  pid_t old_master = server.master_pid();
  LoadClient http(LoadClient::Kind::http_close, "127.0.0.1", server.http_port(), 2);
  pid_t fresh = enter_window(server, old_master);
  ASSERT_GT(fresh, 0);
  ASSERT_EQ(kill(fresh, SIGTERM), 0);
  ASSERT_TRUE(wait_gone(fresh, 10s)) << server.log();
  ASSERT_TRUE(server.wait_log(std::to_string(old_master) + " master: generation 2: all 2 workers ready", 10s))
      << server.log();
  long after_term = http.ok();
  std::this_thread::sleep_for(300ms);
  http.stop();
  std::cout << "[ figures  ] TERM to the new master in the window: http " << http.ok() << " ok / " << http.errors()
            << " failed (a fast stop cuts what it serves at that instant)\n";
  EXPECT_GT(http.ok(), after_term) << "nothing served after the old master resumed";
  expect_settled(server, old_master, 2);
}

// The masters need not agree on the worker count. Both hold the same reuseport
// groups, and a socket one closes stays in its group while the other holds it:
// each master's steering must name exactly the sockets it serves. Wrongly
// steered, a connection lands on a socket nobody polls: it waits (seen here as
// an answer later than 2 s, the checking clients' timeout, over a 3 s window),
// or is reset when the last holder closes that socket. Old 3 / new 2 and old 2
// / new 3, each rolled back and completed.
TEST(Handover, DifferentWorkerCountsOnTheSameGroupsLoseNothing) {
  for (auto [before, after, roll] : {std::tuple{3, 2, true}, std::tuple{3, 2, false}, std::tuple{2, 3, true},
                                     std::tuple{2, 3, false}}) {
    std::string what = std::to_string(before) + " workers, new master " + std::to_string(after) +
                       (roll ? ", rolled back" : ", completed");
    SCOPED_TRACE(what);
    Preforkd server({.workers = before, .top_config = kManual});
    std::string why;
    ASSERT_TRUE(server.start(10s, &why)) << why;
    pid_t old_master = server.master_pid();
    server.set_workers(after);  // the new master reads the file
    Load load(server, 6, 2s);
    std::this_thread::sleep_for(300ms);
    ASSERT_TRUE(server.signal(SIGUSR2));
    pid_t fresh = successor_of(server);
    ASSERT_GT(fresh, 0) << server.log();
    ASSERT_TRUE(wait_parked(old_master, fresh, 15s)) << server.log();
    ASSERT_EQ(workers_of_generation(fresh, 1), static_cast<std::size_t>(after));
    std::this_thread::sleep_for(3s);
    if (roll) {
      roll_back(server, old_master, fresh, 2, static_cast<std::size_t>(before));
    } else {
      complete(server, fresh);
    }
    std::this_thread::sleep_for(500ms);  // after the last holder of a socket let go of it
    load.expect_nothing_lost(what, server);
    expect_settled(server, roll ? old_master : fresh, static_cast<std::size_t>(roll ? before : after));
  }
}

// -s upgrade --wait: 0 with the way to complete or roll back once the new master
// serves; 1 with the new master's own error (FILE:LINE:COL) when it cannot start;
// 3 when its workers never become ready (it stays up, so the client gives up).
TEST(Handover, UpgradeWaitReportsTheOutcome) {
  std::string crash_file = "/tmp/preforkd-itest-crash-" + std::to_string(getpid()) + "-" + std::to_string(free_port());
  Preforkd server({.workers = 2, .crash_if_exists = crash_file, .top_config = kManual});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  pid_t old_master = server.master_pid();
  std::string good = read_file(server.config_path());

  // A port only a start can find taken: the CLI's check passes, the new master
  // fails to bind and reports it over its report pipe; the client prints it.
  BusyPort busy;
  ASSERT_GT(busy.port(), 0);
  const std::string port = std::to_string(busy.port());
  write_file(server.config_path(), good + busy.listener());
  std::string out;
  EXPECT_EQ(server.run_cli("-s upgrade --wait", &out), 1) << out;
  EXPECT_EQ(out, "preforkd: upgrade failed: listener busy: bind 127.0.0.1:" + port + ": Address already in use\n")
      << server.log();
  busy.release();
  expect_settled(server, old_master, 2);

  // A config error the CLI would catch first, sent by a raw client: the new
  // master's FILE:LINE:COL message comes back, as its log has it.
  ASSERT_EQ(good.rfind("workers = 2\n", 0), 0u);
  write_file(server.config_path(), "workers = \"many\"\n" + good.substr(good.find('\n') + 1));
  std::string answer = control_exchange(control_path(server), "{\"version\":1,\"command\":\"upgrade\"}\n", 10s);
  const std::string error = server.config_path() + ":1:11: workers: expected integer or \"auto\"";
  EXPECT_NE(answer.find("\"event\":\"finished\""), std::string::npos) << answer;
  EXPECT_NE(answer.find("\"error\":\"" + std::regex_replace(error, std::regex("\""), "\\\"") + "\""), std::string::npos)
      << answer;
  EXPECT_NE(server.log().find("preforkd: " + error), std::string::npos) << server.log();
  write_file(server.config_path(), good);
  expect_settled(server, old_master, 2);

  // Workers of the new master that never become ready: it stays up (restarting
  // them), so the client gives up with 3 and says the upgrade goes on.
  write_file(crash_file, "");
  EXPECT_EQ(server.run_cli("-s upgrade --wait --timeout 1500ms", &out), 3) << out;
  EXPECT_NE(out.find("no outcome within 1.5s; the upgrade goes on"), std::string::npos) << out;
  pid_t stuck = pid_in_file(server.pid_file());
  ASSERT_NE(stuck, old_master);
  unlink(crash_file.c_str());
  ASSERT_EQ(kill(stuck, SIGQUIT), 0);  // the operator gives that one up
  ASSERT_TRUE(wait_gone(stuck, 15s)) << server.log();
  ASSERT_TRUE(server.wait_log("upgrade failed: new master " + std::to_string(stuck), 5s)) << server.log();
  expect_settled(server, old_master, 2);

  EXPECT_EQ(server.run_cli("-s upgrade --wait", &out), 0) << out << server.log();
  pid_t fresh = pid_in_file(server.pid_file());
  EXPECT_EQ(out, "preforkd: upgraded: new master " + std::to_string(fresh) + " serves; old master " +
                     std::to_string(old_master) + " is parked with its sockets (upgrade_handover = \"manual\")\n" +
                     "  to complete:  kill -QUIT " + std::to_string(old_master) + "\n" +
                     "  to roll back: kill -HUP " + std::to_string(old_master) + ", then kill -QUIT " +
                     std::to_string(fresh) + " once the old master's workers serve\n");
  // In the window: a second upgrade (to the new master) and a reload of the old
  // one are refused with reasons.
  EXPECT_EQ(server.run_cli("-s upgrade --wait", &out), 1) << out;
  EXPECT_NE(out.find("still runs: complete that upgrade first"), std::string::npos) << out;
  ASSERT_TRUE(wait_parked(old_master, fresh, 15s)) << server.log();
  complete(server, fresh);
  expect_settled(server, fresh, 2);
}

}  // namespace
