// Exec mode ([exec]) with real programs from Debian 12's packages as the workers:
// gunicorn (LISTEN_FDS and READY=1 of its own), uvicorn (--fd 3, ready by
// duration), a Go server on go-systemd, a Node server (listen({fd: 3}) and
// systemd-notify), and a Python UDP server. For each (ExecMatrix.*): every
// worker holds its own slot socket, load spreads over them, and reload storms,
// worker-count storms and TTIN/TTOU under `wrk -H 'Connection: close'` (UDP:
// echo clients) lose nothing; keep-alive clients too where the program stops
// gracefully. Then the edges (ExecMode.*): what the trampoline hands a program,
// a program that cannot start, a reload that never gets ready or whose program
// exits at once (through `-s reload --wait`), USR1, the watchdog, an output
// flood, the admin endpoint and the control socket, USR2 (and the manual
// handover's rollback), QUIT and TERM, and a
// reload from built-in workers to a program and back.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <thread>

#include "tests/integration/exec_programs.hpp"
#include "tests/integration/harness.hpp"
#include "tests/integration/load_client.hpp"
#include "tests/integration/unix_client.hpp"
#include "tests/integration/upgrade_checks.hpp"
#include "tests/integration/wrk.hpp"

using namespace itest;

namespace {

// The load of one scenario: for HTTP, `wrk -H 'Connection: close'` for the
// volume plus one client that checks every body; for UDP, echo clients that
// check every datagram. Every failure counts.
class Load {
 public:
  explicit Load(ExecServer& s, bool keep_alive = false) : server_(s), keep_alive_(keep_alive) {
    if (s.program().udp) {
      check_ = std::make_unique<LoadClient>(LoadClient::Kind::udp_echo, "127.0.0.1", s.port(), 2);
    } else {
      wrk_ = std::make_unique<WrkSeries>(s.port(), keep_alive ? 16 : 8, keep_alive, s.server().dir());
      check_ = std::make_unique<LoadClient>(
          keep_alive ? LoadClient::Kind::http_keepalive : LoadClient::Kind::http_close, "127.0.0.1", s.port(), 1);
    }
  }

  // strict: every request answered. Otherwise (a program that drops what it
  // accepted but had not read when it stops, see ExecProgram) only what the
  // socket handover answers for: nothing refused or reset at connect, nothing
  // left without an answer.
  void expect_nothing_lost(const std::string& what, bool strict = true) {
    check_->stop();
    bool clean = wrk_ ? wrk_->stop() : true;
    std::cout << "[ figures  ] " << server_.program().name << " " << what << ": ";
    if (wrk_)
      std::cout << "wrk" << (keep_alive_ ? " keep-alive " : " Connection: close ") << wrk_->requests()
                << " requests, " << wrk_->socket_errors() << " socket errors (" << wrk_->connect_errors()
                << " connect, " << wrk_->timeouts() << " timeout), " << wrk_->non_2xx() << " non-2xx; ";
    std::cout << "checked " << check_->ok() << " ok, " << check_->errors() << " failed\n";
    const std::string why = check_->error_sample() + "\n" + tail(server_.server().log());
    if (strict) {
      EXPECT_EQ(check_->errors(), 0) << why;
    } else {
      for (ErrorClass c : {ErrorClass::connect_refused, ErrorClass::connect_other, ErrorClass::timeout,
                           ErrorClass::wrong_bytes})
        EXPECT_EQ(check_->errors(c), 0) << to_string(c) << "\n" << why;
    }
    EXPECT_GT(check_->ok(), 20);
    if (!wrk_) return;
    EXPECT_TRUE(clean) << wrk_->output();
    if (strict) {
      EXPECT_EQ(wrk_->socket_errors(), 0) << wrk_->output() << "\n" << tail(server_.server().log());
    }
    EXPECT_EQ(wrk_->connect_errors(), 0) << wrk_->output() << "\n" << tail(server_.server().log());
    EXPECT_EQ(wrk_->timeouts(), 0) << wrk_->output();
    EXPECT_EQ(wrk_->non_2xx(), 0) << wrk_->output();
    EXPECT_GT(wrk_->requests(), 100) << wrk_->output();
  }

  static std::string tail(const std::string& log) { return log.size() > 6000 ? log.substr(log.size() - 6000) : log; }

 private:
  ExecServer& server_;
  bool keep_alive_;
  std::unique_ptr<WrkSeries> wrk_;
  std::unique_ptr<LoadClient> check_;
};

// Every worker holds exactly one of the master's sockets for the port (the
// sockets of the listener's reuseport group), each a different one.
void expect_own_slot_sockets(const ExecServer& s, std::size_t workers) {
  const bool udp = s.program().udp;
  std::vector<unsigned long> group = socket_inodes(udp ? "/proc/net/udp" : "/proc/net/tcp", s.port(), !udp);
  ASSERT_EQ(group.size(), workers) << "one socket per slot in the reuseport group";
  std::vector<unsigned long> master = socket_inodes_of(s.server().master_pid());
  for (unsigned long inode : group)
    EXPECT_NE(std::find(master.begin(), master.end(), inode), master.end()) << "the master keeps every slot socket";
  std::set<unsigned long> seen;
  std::vector<pid_t> pids = s.workers();
  ASSERT_EQ(pids.size(), workers);
  for (pid_t pid : pids) {
    std::set<unsigned long> mine;
    for (unsigned long inode : socket_inodes_of(pid))
      if (std::find(group.begin(), group.end(), inode) != group.end()) mine.insert(inode);
    EXPECT_EQ(mine.size(), 1u) << "worker " << pid << " holds " << mine.size() << " of the group's sockets";
    seen.insert(mine.begin(), mine.end());
  }
  EXPECT_EQ(seen.size(), workers) << "each worker its own slot's socket";
}

// New connections (datagrams from new ports) reach every slot.
void expect_spread(const ExecServer& s, int workers) {
  std::map<int, int> by_slot;
  const int asks = 100 * workers;
  int failed = 0;
  for (int i = 0; i < asks; ++i) {
    if (auto a = s.ask()) ++by_slot[a->slot];
    else ++failed;
  }
  EXPECT_EQ(failed, 0);
  std::cout << "[ figures  ] " << s.program().name << " spread over " << workers << " workers:";
  for (auto [slot, n] : by_slot) std::cout << " slot " << slot << " " << n;
  std::cout << "\n";
  EXPECT_EQ(by_slot.size(), static_cast<std::size_t>(workers));
  for (auto [slot, n] : by_slot) EXPECT_GE(n, asks / workers / 4) << "slot " << slot << " is starved";
}

// Every answer now comes from `generation`, and only `workers` programs run.
void expect_serving(ExecServer& s, unsigned generation, std::size_t workers) {
  EXPECT_TRUE(s.server().wait_workers(workers, 20s)) << s.workers().size() << " workers\n" << s.server().log();
  for (int i = 0; i < 20; ++i) {
    auto a = s.ask();
    ASSERT_TRUE(a) << "request " << i;
    EXPECT_EQ(a->generation, generation);
  }
}

class ExecMatrix : public ::testing::TestWithParam<ExecProgram> {
 protected:
  void SetUp() override {
    if (GetParam().name == "go") {
      std::string error;
      ASSERT_FALSE(go_server_binary(&error).empty()) << error;
    }
  }
};

std::vector<pid_t> sorted_workers(const ExecServer& s) {
  std::vector<pid_t> pids = s.workers();
  std::sort(pids.begin(), pids.end());
  return pids;
}

// After an abandoned reload: only the programs of generation 1 (`before`) are
// left, and they serve.
void expect_untouched(ExecServer& s, const std::vector<pid_t>& before) {
  ASSERT_TRUE(s.server().wait_workers(before.size(), 10s)) << s.server().log();
  EXPECT_EQ(sorted_workers(s), before);
  expect_serving(s, 1, before.size());
}

std::string param_name(const ::testing::TestParamInfo<ExecProgram>& info) {
  std::string name = info.param.name;
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

INSTANTIATE_TEST_SUITE_P(Programs, ExecMatrix, ::testing::ValuesIn(exec_programs()), param_name);

TEST_P(ExecMatrix, EachWorkerHoldsItsOwnSlotSocketAndLoadSpreads) {
  ExecServer s(GetParam(), {.workers = 3});
  std::string why;
  ASSERT_TRUE(s.start(&why)) << why;
  expect_own_slot_sockets(s, 3);
  expect_spread(s, 3);
}

TEST_P(ExecMatrix, ReloadStormLosesNothing) {
  constexpr int kReloads = 6;
  ExecServer s(GetParam(), {.workers = 2});
  std::string why;
  ASSERT_TRUE(s.start(&why)) << why;
  Load load(s);
  std::this_thread::sleep_for(300ms);
  for (int i = 0; i < kReloads; ++i) ASSERT_TRUE(s.reload()) << "reload " << i << "\n" << s.server().log();
  std::this_thread::sleep_for(300ms);
  load.expect_nothing_lost(std::to_string(kReloads) + " reloads", !GetParam().drops_unread_at_stop);
  EXPECT_EQ(count_of(s.server().log(), "keeps serving"), 0u) << s.server().log();
  expect_serving(s, 1 + kReloads, 2);
  expect_own_slot_sockets(s, 2);
}

TEST_P(ExecMatrix, WorkerCountStormLosesNothing) {
  ExecServer s(GetParam(), {.workers = 2});
  std::string why;
  ASSERT_TRUE(s.start(&why)) << why;
  Load load(s);
  std::this_thread::sleep_for(300ms);
  const int counts[] = {3, 2, 3, 2, 3, 2};
  for (int workers : counts) {
    s.rewrite(workers);
    ASSERT_TRUE(s.reload()) << "reload to " << workers << " workers\n" << s.server().log();
  }
  std::this_thread::sleep_for(300ms);
  load.expect_nothing_lost("workers 2<->3 x6", !GetParam().drops_unread_at_stop);
  expect_serving(s, 1 + 6, 2);
  expect_own_slot_sockets(s, 2);
}

TEST_P(ExecMatrix, TtinTtouLosesNothing) {
  ExecServer s(GetParam(), {.workers = 2});
  std::string why;
  ASSERT_TRUE(s.start(&why)) << why;
  Load load(s);
  std::this_thread::sleep_for(300ms);
  for (int round = 0; round < 3; ++round) {
    std::size_t ready_lines = count_of(s.server().log(), "all 3 workers ready");
    ASSERT_TRUE(s.server().signal(SIGTTIN));
    ASSERT_TRUE(s.server().wait_log("all 3 workers ready", 30s, ready_lines + 1)) << s.server().log();
    ASSERT_TRUE(s.server().signal(SIGTTOU));
    ASSERT_TRUE(s.server().wait_workers(2, 20s)) << s.server().log();
  }
  std::this_thread::sleep_for(300ms);
  load.expect_nothing_lost("TTIN/TTOU x3");
  expect_serving(s, 1, 2);
}

// Programs whose stop answers the next request of a keep-alive connection with
// `Connection: close` and closes only silent ones (the built-in workers' way);
// the others close idle keep-alive connections at once when they stop.
class ExecKeepAlive : public ExecMatrix {};
INSTANTIATE_TEST_SUITE_P(GracefulPrograms, ExecKeepAlive, ::testing::ValuesIn(graceful_keepalive_programs()),
                         param_name);

TEST_P(ExecKeepAlive, KeepAliveClientsSeeNoErrorThroughReloadsAndScaling) {
  ExecServer s(GetParam(), {.workers = 2});
  std::string why;
  ASSERT_TRUE(s.start(&why)) << why;
  Load load(s, /*keep_alive=*/true);
  std::this_thread::sleep_for(300ms);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(s.reload()) << s.server().log();
  std::size_t ready_lines = count_of(s.server().log(), "all 3 workers ready");
  ASSERT_TRUE(s.server().signal(SIGTTIN));
  ASSERT_TRUE(s.server().wait_log("all 3 workers ready", 30s, ready_lines + 1)) << s.server().log();
  ASSERT_TRUE(s.server().signal(SIGTTOU));
  ASSERT_TRUE(s.server().wait_workers(2, 20s)) << s.server().log();
  std::this_thread::sleep_for(1500ms);  // the last stop's idle grace
  load.expect_nothing_lost("keep-alive, 4 reloads + TTIN/TTOU");
}

// --- The edges ------------------------------------------------------------------

std::string world_writable_dir() {
  char tmpl[] = "/tmp/preforkd-exec-probe-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  chmod(dir.c_str(), 0777);
  return dir;
}

// What the trampoline hands a program, as the program sees it: its sockets on
// fds 3 and 4 without close-on-exec and nothing else open, the environment,
// its own pid in LISTEN_PID, no blocked signals, the user, group, fd limit and
// working directory of the config.
TEST(ExecMode, TheProgramGetsItsSocketsEnvironmentAndCredentials) {
  const std::string dir = world_writable_dir();
  run_command("cp '" + exec_fixtures_dir() + "/probe.py' '" + dir + "/probe.py' && chmod 644 '" + dir + "/probe.py'");
  Preforkd server({.workers = 2});
  write_file(server.config_path(),
             "workers = 2\npid_file = \"" + server.pid_file() + "\"\nuser = \"nobody\"\ngroup = \"nogroup\"\n"
             "worker_rlimit_nofile = 4321\n[exec]\ncommand = [\"/usr/bin/python3\", \"probe.py\", \"two words\"]\n"
             "directory = \"" + dir + "\"\nenvironment = { PROBE_DIR = \"" + dir + "\", EXTRA = \"x y\" }\n"
             "[[listen]]\nname = \"http\"\naddress = \"127.0.0.1:" + std::to_string(server.http_port()) +
             "\"\nprotocol = \"tcp\"\n[[listen]]\nname = \"dns\"\naddress = \"127.0.0.1:" +
             std::to_string(server.http_port()) + "\"\nprotocol = \"udp\"\n");
  std::string why;
  ASSERT_TRUE(server.start(20s, &why)) << why;
  for (pid_t pid : server.worker_pids()) {
    std::string text = read_file(dir + "/probe." + std::to_string(pid) + ".json");
    ASSERT_FALSE(text.empty()) << "no probe output from " << pid << "\n" << server.log();
    auto probe = nlohmann::json::parse(text);
    EXPECT_EQ(probe["pid"], pid);
    const auto& env = probe["env"];
    EXPECT_EQ(env["LISTEN_PID"], std::to_string(pid)) << "the program's own pid, set between fork and exec";
    EXPECT_EQ(env["LISTEN_FDS"], "2");
    EXPECT_EQ(env["LISTEN_FDNAMES"], "http:dns");
    EXPECT_EQ(env["WATCHDOG_PID"], std::to_string(pid));
    EXPECT_EQ(env["WATCHDOG_USEC"], "30000000");
    EXPECT_EQ(env["EXTRA"], "x y");
    EXPECT_EQ(env["PREFORKD_GENERATION"], "1");
    EXPECT_TRUE(env["PREFORKD_SLOT"] == "0" || env["PREFORKD_SLOT"] == "1");
    EXPECT_TRUE(std::string(env["NOTIFY_SOCKET"]).starts_with("@preforkd/" + std::to_string(server.master_pid()) + "/"));
    EXPECT_EQ(probe["argv"], nlohmann::json::array({"probe.py", "two words"}));
    EXPECT_EQ(probe["fds"], nlohmann::json::array({0, 1, 2, 3, 4})) << "every other fd closed";
    EXPECT_EQ(probe["fd3"], "SOCK_STREAM");
    EXPECT_EQ(probe["fd4"], "SOCK_DGRAM");
    EXPECT_EQ(probe["inheritable"], nlohmann::json::array({true, true})) << "close-on-exec cleared on 3 and 4";
    EXPECT_EQ(probe["blocked"], "0000000000000000") << "no signal left blocked";
    EXPECT_EQ(probe["uid"], 65534);
    EXPECT_EQ(probe["gid"], 65534);
    EXPECT_EQ(probe["groups"], nlohmann::json::array({65534}));
    EXPECT_EQ(probe["nofile"], 4321);
    EXPECT_EQ(probe["cwd"], dir);
    EXPECT_EQ(probe["parent_death_signal"], SIGTERM);
  }
  run_command("rm -rf '" + dir + "'");
}

// The master ignores SIGPIPE and its workers block their signals until their
// handlers exist; a program must inherit neither. `sleep` changes nothing of
// its own, so its /proc status shows what the trampoline left.
TEST(ExecMode, AProgramInheritsNoIgnoredOrBlockedSignalAndNoOtherFd) {
  ExecServer s({"sleep", false, false, "command = [\"sleep\", \"60\"]\nready = \"0.5s\"\n"}, {.workers = 2});
  std::string why;
  ASSERT_TRUE(s.start(&why)) << why;
  for (pid_t pid : s.workers()) {
    const std::string status = read_file("/proc/" + std::to_string(pid) + "/status");
    for (const char* field : {"SigBlk:\t", "SigIgn:\t"}) {
      auto at = status.find(field);
      ASSERT_NE(at, std::string::npos);
      EXPECT_EQ(status.substr(at + std::strlen(field), 16), "0000000000000000") << field << " of " << pid;
    }
    std::string fds;
    run_command("ls /proc/" + std::to_string(pid) + "/fd | sort -n | tr '\\n' ' '", &fds);
    EXPECT_EQ(fds, "0 1 2 3 ") << "pid " << pid;
  }
}

// A program that exits at once: its own error message is in the log under its
// slot, the exit status follows, and the slot backs off instead of spinning.
TEST(ExecMode, AProgramThatExitsAtOnceIsLoggedAndBacksOff) {
  ExecServer s({"missing-script", false, false,
                "command = [\"/usr/bin/python3\", \"missing.py\"]\ndirectory = \"/tmp\"\n"},
               {.workers = 2});
  EXPECT_FALSE(s.start(nullptr, 4s));
  std::string log = s.server().log();
  EXPECT_NE(log.find("program slot=0 gen=1 pid="), std::string::npos) << log;
  EXPECT_NE(log.find("can't open file '/tmp/missing.py': [Errno 2] No such file or directory"), std::string::npos)
      << log;
  EXPECT_NE(log.find("exited unexpectedly (status 2)"), std::string::npos) << log;
  EXPECT_NE(log.find("crash loop"), std::string::npos) << log;
  // 100 ms doubling to 10 s: a handful of starts per slot in 4 s, where
  // spinning would be hundreds.
  std::size_t starts = count_of(log, "started /usr/bin/python3 as worker");
  std::cout << "[ figures  ] a program exiting at once: " << starts << " starts of 2 slots in 4 s\n";
  EXPECT_LE(starts, 30u) << log;
  EXPECT_FALSE(process_gone(s.server().master_pid())) << "the master stays up";
}

// The program vanishes after the config was checked: a new slot's trampoline
// says so (the call and the reason) and exits with the shell's code for it.
TEST(ExecMode, AnExecFailureIsReportedWithItsReason) {
  const std::string dir = world_writable_dir();
  const std::string script = dir + "/serve";
  write_file(script, "#!/usr/bin/python3\n" + read_file(exec_fixtures_dir() + "/udp_server.py"));
  chmod(script.c_str(), 0755);
  ExecServer s({"vanishing", true, false, "command = [\"" + script + "\"]\n"}, {.workers = 1});
  std::string why;
  ASSERT_TRUE(s.start(&why)) << why;
  ::unlink(script.c_str());
  ASSERT_TRUE(s.server().signal(SIGTTIN));  // slot 1, from the config checked at the start
  ASSERT_TRUE(s.server().wait_log("exited unexpectedly (status 127)", 10s)) << s.server().log();
  std::string log = s.server().log();
  EXPECT_NE(log.find("preforkd exec slot=1 gen=1: execv(" + script + "): No such file or directory"), std::string::npos)
      << log;
  // Slot 0 serves on. (Datagrams the kernel hashes to slot 1's socket wait
  // there for a worker that cannot start, as for any slot in backoff.)
  int answered = 0;
  for (int i = 0; i < 20 && answered < 3; ++i)
    if (auto reply = udp_roundtrip("127.0.0.1", s.port(), "whoami", 300ms)) {
      EXPECT_EQ(*reply, "slot 0 gen 1");
      ++answered;
    }
  EXPECT_EQ(answered, 3) << log;
  run_command("rm -rf '" + dir + "'");
}

// A reload to a program that never says READY=1: abandoned at the start
// timeout (a duration with units), its processes killed, the old generation
// untouched, and `-s reload --wait` says so (exit 1).
TEST(ExecMode, AReloadThatNeverGetsReadyKeepsTheOldGeneration) {
  ExecServer s(exec_program("go"), {.workers = 2});
  std::string why;
  ASSERT_TRUE(s.start(&why)) << why;
  const std::vector<pid_t> before = sorted_workers(s);
  // Alive, listening (it holds fd 3), but never a word on NOTIFY_SOCKET.
  s.rewrite(2, "start_timeout = \"2s\"\n");
  write_file(s.server().config_path(),
             std::regex_replace(s.config_text(), std::regex("command = .*"),
                                "command = [\"/usr/bin/python3\", \"-c\", \"import time; time.sleep(60)\"]"));
  LoadClient load(LoadClient::Kind::http_close, "127.0.0.1", s.port(), 1);
  std::string out;
  EXPECT_EQ(s.server().run_cli("-s reload --wait", &out), 1) << out << s.server().log();
  load.stop();
  EXPECT_EQ(out, "preforkd: reload failed: reload to generation 2 failed: not ready within 2000 ms; generation 1 "
                 "keeps serving\n");
  EXPECT_EQ(load.errors(), 0) << load.error_sample();
  std::string log = s.server().log();
  EXPECT_NE(log.find("reload to generation 2 failed: not ready within 2000 ms; generation 1 keeps serving"),
            std::string::npos)
      << log;
  expect_untouched(s, before);  // the abandoned programs are killed
}

// `-s reload --wait` to a program that exits at once: exit 1, and the reason
// names the worker, its exit and its last words, so that the operator need
// not search the error log. No worker of it is left, the old generation
// serves on, and the next good reload (durations with units) works.
TEST(ExecMode, ReloadWaitReportsAProgramThatExitsAtOnce) {
  ExecServer s(exec_program("python-udp"), {.workers = 2});
  std::string why;
  ASSERT_TRUE(s.start(&why)) << why;
  const std::vector<pid_t> before = sorted_workers(s);
  const std::string good = s.config_text();
  write_file(s.server().config_path(),
             std::regex_replace(good, std::regex("command = .*"),
                                "command = [\"/usr/bin/python3\", \"/nonexistent/missing.py\"]"));
  std::string out;
  EXPECT_EQ(s.server().run_cli("-s reload --wait", &out), 1) << out << s.server().log();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      out, m,
      std::regex("^preforkd: reload failed: reload to generation 2 failed: worker (\\d+) exited during start "
                 "\\(status 2; its last output: \".*can't open file '/nonexistent/missing.py': \\[Errno 2\\] No such "
                 "file or directory\"\\); generation 1 keeps serving\n$")))
      << out;
  // Both slots start together; whichever program exits first is the one named.
  EXPECT_TRUE(std::regex_search(s.server().log(), std::regex("program slot=[01] gen=2 pid=" + std::string(m[1]) + ": ")))
      << "the pid named is the program that failed\n" << s.server().log();
  expect_untouched(s, before);

  // (This program says READY=1 before the 1.5 s are up; what counts here is
  // that the master takes the durations.)
  s.rewrite(2, "ready = \"1500ms\"\nstart_timeout = \"1m\"\n");
  EXPECT_EQ(s.server().run_cli("-s reload --wait", &out), 0) << out << s.server().log();
  EXPECT_EQ(out, "preforkd: reloaded: generation 3 serves\n");
  expect_serving(s, 3, 2);
}

// gunicorn's READY=1 comes from its arbiter; with --preload (as the suite and the
// README run it) the app is imported before it, so a new version whose app cannot
// be imported fails the reload instead of replacing generation 1 with programs
// that then exit in a loop.
TEST(ExecMode, GunicornWhoseAppCannotBeImportedFailsTheReload) {
  ExecServer s(exec_program("gunicorn"), {.workers = 2});
  std::string why;
  ASSERT_TRUE(s.start(&why)) << why;
  const std::vector<pid_t> before = sorted_workers(s);
  const std::string good = s.config_text();
  ASSERT_NE(good.find("wsgi_app:app"), std::string::npos) << good;
  write_file(s.server().config_path(), std::regex_replace(good, std::regex("wsgi_app:app"), "no_such_app:app"));
  std::string out;
  EXPECT_EQ(s.server().run_cli("-s reload --wait", &out), 1) << out << s.server().log();
  EXPECT_TRUE(std::regex_search(out, std::regex("^preforkd: reload failed: reload to generation 2 failed: worker \\d+ "
                                                "exited during start \\(status \\d+; its last output: \".*"
                                                "No module named 'no_such_app'\"\\); generation 1 keeps serving\n$")))
      << out;
  expect_untouched(s, before);
}

// USR1 becomes each program's reopen_signal: SIGUSR1 to the Go server, which
// logs it (its stderr reaches the error log under its slot); nothing to
// uvicorn, which has reopen_signal = "none" (Python's default for SIGUSR1 is to
// die).
TEST(ExecMode, Usr1IsForwardedAsTheReopenSignal) {
  ExecServer go(exec_program("go"), {.workers = 2});
  ExecServer uvicorn(exec_program("uvicorn"), {.workers = 2});
  std::string why;
  ASSERT_TRUE(go.start(&why)) << why;
  ASSERT_TRUE(uvicorn.start(&why)) << why;
  std::vector<pid_t> uvicorns = uvicorn.workers();
  ASSERT_TRUE(go.server().signal(SIGUSR1));
  ASSERT_TRUE(uvicorn.server().signal(SIGUSR1));
  EXPECT_TRUE(go.server().wait_log("SIGUSR1: reopening logs", 10s, 2)) << go.server().log();
  for (pid_t pid : go.workers())
    EXPECT_NE(go.server().log().find("pid=" + std::to_string(pid) + ": SIGUSR1: reopening logs"), std::string::npos);
  EXPECT_TRUE(uvicorn.server().wait_log("logs reopened; telling 0 worker(s)", 5s)) << uvicorn.server().log();
  std::this_thread::sleep_for(500ms);
  std::vector<pid_t> still = uvicorn.workers();
  EXPECT_EQ(std::set<pid_t>(still.begin(), still.end()), std::set<pid_t>(uvicorns.begin(), uvicorns.end()));
  EXPECT_TRUE(uvicorn.ask());
}

// worker_timeout judges a program from its first WATCHDOG=1 on: a stopped Go
// server (it pings at half of WATCHDOG_USEC) is killed and replaced; a stopped
// uvicorn (no watchdog) is left alone.
TEST(ExecMode, TheWatchdogAppliesToProgramsThatPing) {
  ExecServer go(exec_program("go"), {.workers = 2, .worker_timeout = 2});
  std::string why;
  ASSERT_TRUE(go.start(&why)) << why;
  ASSERT_TRUE(go.server().wait_log("sends WATCHDOG=1: worker_timeout applies to it from now on", 5s, 2))
      << go.server().log();
  pid_t victim = go.workers().front();
  kill(victim, SIGSTOP);
  EXPECT_TRUE(go.server().wait_log("killing worker " + std::to_string(victim), 10s)) << go.server().log();
  EXPECT_NE(go.server().log().find("no WATCHDOG=1 for"), std::string::npos);
  EXPECT_TRUE(wait_gone(victim, 5s));
  EXPECT_TRUE(go.server().wait_log("all 2 workers ready", 10s, 2)) << "replaced\n" << go.server().log();
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(go.ask()) << i;

  ExecServer uvicorn(exec_program("uvicorn"), {.workers = 1, .worker_timeout = 1});
  ASSERT_TRUE(uvicorn.start(&why)) << why;
  pid_t quiet = uvicorn.workers().front();
  kill(quiet, SIGSTOP);
  std::this_thread::sleep_for(3s);  // three times worker_timeout
  EXPECT_FALSE(process_gone(quiet));
  EXPECT_EQ(count_of(uvicorn.server().log(), "killing worker"), 0u) << uvicorn.server().log();
  kill(quiet, SIGCONT);
  EXPECT_TRUE(uvicorn.ask());
}

// A program writing lines as fast as it can: the master logs at most its
// budget, says how many it dropped, and keeps answering: the admin endpoint,
// a reload, a stop.
TEST(ExecMode, AnOutputFloodNeitherBlocksNorStarvesTheMaster) {
  // A TOML literal string: the script exactly as Python reads it, newlines and all.
  const std::string flood =
      "'''\n"
      "import os, socket\n"
      "a = os.environ['NOTIFY_SOCKET']\n"
      "socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b'READY=1', '\\0' + a[1:])\n"
      "line = 'flood ' + 'x' * 100 + '\\n'\n"
      "while True: os.write(1, line.encode() * 50)\n"
      "'''";
  ExecServer s({"flood", false, false, "command = [\"/usr/bin/python3\", \"-c\", " + flood + "]\n"},
               {.workers = 2, .graceful_timeout = 3, .admin = true});
  std::string why;
  ASSERT_TRUE(s.start(&why)) << why;
  EXPECT_TRUE(s.server().wait_log("line(s) not logged: more than 1000 lines in one second", 10s)) << "...";
  for (int i = 0; i < 5; ++i) {
    auto status = http_get(s.admin_port(), "/status");
    ASSERT_TRUE(status && status->status == 200) << "admin request " << i;
  }
  ASSERT_TRUE(s.reload()) << "a reload completes under the flood";
  ASSERT_TRUE(s.server().signal(SIGQUIT));
  EXPECT_EQ(s.server().wait_exit(20s), std::optional<int>(0));
  std::string log = s.server().log();
  const std::size_t lines = count_of(log, ": flood xxxx");
  std::cout << "[ figures  ] flood: " << lines << " program lines logged, log " << log.size() / 1024 << " KiB\n";
  EXPECT_GT(lines, 100u);
}

// The admin endpoint shows programs: pid, slot, generation, state and STATUS=
// text; no request counters, which preforkd does not have for them.
TEST(ExecMode, StatusAndMetricsShowPrograms) {
  ExecServer s(exec_program("go"), {.workers = 2, .admin = true});
  std::string why;
  ASSERT_TRUE(s.start(&why)) << why;
  auto status = http_get(s.admin_port(), "/status");
  ASSERT_TRUE(status && status->status == 200);
  auto doc = nlohmann::json::parse(status->body);
  ASSERT_EQ(doc["workers"].size(), 2u) << status->body;
  std::set<pid_t> pids;
  for (const auto& w : doc["workers"]) {
    EXPECT_EQ(w["kind"], "exec") << w;
    EXPECT_EQ(w["status"], "serving on fd 3") << w;
    EXPECT_EQ(w["state"], "ready") << w;
    EXPECT_EQ(w["generation"], 1);
    EXPECT_FALSE(w.contains("requests")) << "no counters for a program: " << w;
    pids.insert(w["pid"].get<pid_t>());
  }
  std::vector<pid_t> workers = s.workers();
  EXPECT_EQ(pids, std::set<pid_t>(workers.begin(), workers.end()));
  // The control socket's status (what `preforkd status` reads without [admin]),
  // next to the pid file: the same workers.
  std::string control_socket = s.server().pid_file();
  if (control_socket.ends_with(".pid")) control_socket.resize(control_socket.size() - 4);
  control_socket += ".sock";
  const std::string answer = control_exchange(control_socket, "{\"version\":1,\"command\":\"status\"}\n");
  auto control = nlohmann::json::parse(answer, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(control.is_object()) << answer;
  ASSERT_EQ(control["status"]["workers"].size(), 2u) << answer;
  for (const auto& w : control["status"]["workers"]) {
    EXPECT_EQ(w["kind"], "exec") << w;
    EXPECT_EQ(w["status"], "serving on fd 3") << w;
    EXPECT_EQ(pids.count(w["pid"].get<pid_t>()), 1u) << w;
  }
  auto metrics = http_get(s.admin_port(), "/metrics");
  ASSERT_TRUE(metrics && metrics->status == 200);
  for (pid_t pid : workers) {
    EXPECT_NE(metrics->body.find("pid=\"" + std::to_string(pid) + "\",kind=\"exec\",state=\"ready\"} 1"),
              std::string::npos)
        << metrics->body;
    EXPECT_EQ(metrics->body.find("preforkd_worker_requests_total{slot=\"0\",generation=\"1\",pid=\"" +
                                 std::to_string(pid)),
              std::string::npos);
  }
  std::string out;
  ASSERT_EQ(s.server().run_cli("status", &out), 0) << out;
  EXPECT_NE(out.find("serving on fd 3"), std::string::npos) << out;
  EXPECT_NE(out.find("exec"), std::string::npos) << out;
}

// USR2 with programs: the new master starts its own programs on the same slot
// sockets, then the old one stops its own; clients see nothing.
TEST(ExecMode, Usr2HandsOverToANewMasterWithItsOwnPrograms) {
  ExecServer s(exec_program("go"), {.workers = 2});
  std::string why;
  ASSERT_TRUE(s.start(&why)) << why;
  const pid_t old_master = s.server().master_pid();
  std::vector<unsigned long> group = socket_inodes("/proc/net/tcp", s.port(), true);
  std::vector<pid_t> old_workers = s.workers();
  LoadClient load(LoadClient::Kind::http_close, "127.0.0.1", s.port(), 2);
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE(s.server().signal(SIGUSR2));
  EXPECT_EQ(s.server().wait_exit(30s), std::optional<int>(0)) << s.server().log();
  std::this_thread::sleep_for(300ms);
  load.stop();
  std::cout << "[ figures  ] go USR2: " << load.ok() << " ok, " << load.errors() << " failed\n";
  EXPECT_EQ(load.errors(), 0) << load.error_sample() << "\n" << s.server().log();
  const pid_t new_master = static_cast<pid_t>(std::stoi(read_file(s.server().pid_file())));
  ASSERT_NE(new_master, old_master);
  s.server().follow_master(new_master);
  ASSERT_TRUE(s.server().wait_workers(2, 10s));
  for (pid_t pid : old_workers) EXPECT_TRUE(process_gone(pid)) << "old program " << pid;
  std::vector<unsigned long> now = socket_inodes("/proc/net/tcp", s.port(), true);
  std::sort(group.begin(), group.end());
  std::sort(now.begin(), now.end());
  EXPECT_EQ(now, group) << "the same slot sockets";
  expect_own_slot_sockets(s, 2);
  expect_serving(s, 1, 2);  // the new master's first generation
}

// upgrade_handover = "manual" with programs: in the rollback window the new
// master's programs serve and the old master's are stopped (it keeps the slot
// sockets); rolling back (HUP to the old master, QUIT to the new) starts the old
// master's programs again, as its generation 2. No request is lost.
TEST(ExecMode, AManualUpgradeRollsBackToTheOldMastersPrograms) {
  ExecServer s(exec_program("go"), {.workers = 2, .top = "upgrade_handover = \"manual\"\n"});
  std::string why;
  ASSERT_TRUE(s.start(&why)) << why;
  const pid_t old_master = s.server().master_pid();
  const std::string old_tag = std::to_string(old_master) + " master: ";
  LoadClient load(LoadClient::Kind::http_close, "127.0.0.1", s.port(), 2);
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE(s.server().signal(SIGUSR2));
  const pid_t fresh = successor_of(s.server());
  ASSERT_GT(fresh, 0) << s.server().log();
  ASSERT_TRUE(s.server().wait_log(old_tag + "upgrade: new master " + std::to_string(fresh) +
                                      " serves (upgrade_handover = \"manual\")",
                                  30s))
      << s.server().log();
  bool parked = false;  // the old master's only child is the new master
  for (auto deadline = std::chrono::steady_clock::now() + 15s; !parked && std::chrono::steady_clock::now() < deadline;
       std::this_thread::sleep_for(20ms))
    parked = children_of(old_master) == std::vector<pid_t>{fresh};
  ASSERT_TRUE(parked) << "the old master's programs did not stop\n" << s.server().log();
  const std::vector<pid_t> new_programs = children_of(fresh);
  EXPECT_EQ(new_programs.size(), 2u);
  for (int i = 0; i < 5; ++i) {
    auto answer = s.ask();
    ASSERT_TRUE(answer) << s.server().log();
    EXPECT_EQ(std::count(new_programs.begin(), new_programs.end(), answer->pid), 1) << "a new master's program answers";
  }

  ASSERT_EQ(kill(old_master, SIGHUP), 0);
  ASSERT_TRUE(s.server().wait_log(old_tag + "generation 2: all 2 workers ready", 30s)) << s.server().log();
  ASSERT_EQ(kill(fresh, SIGQUIT), 0);
  ASSERT_TRUE(wait_gone(fresh, 30s)) << s.server().log();
  ASSERT_TRUE(s.server().wait_log(old_tag + "rollback complete", 10s)) << s.server().log();
  std::this_thread::sleep_for(300ms);
  load.stop();
  std::cout << "[ figures  ] go manual upgrade, rolled back: " << load.ok() << " ok, " << load.errors() << " failed\n";
  EXPECT_EQ(load.errors(), 0) << load.error_sample() << "\n" << s.server().log();
  for (pid_t pid : new_programs) EXPECT_TRUE(process_gone(pid)) << "the new master's program " << pid;
  ASSERT_TRUE(s.server().wait_workers(2, 10s)) << s.server().log();
  expect_own_slot_sockets(s, 2);
  expect_serving(s, 2, 2);
}

// QUIT: every program gets its stop_signal and the master exits once they are
// gone; TERM: TERM to every program. Nothing is left running either way.
TEST(ExecMode, QuitAndTermStopEveryProgram) {
  for (int signum : {SIGQUIT, SIGTERM}) {
    ExecServer s(exec_program("node"), {.workers = 2});
    std::string why;
    ASSERT_TRUE(s.start(&why)) << why;
    std::vector<pid_t> workers = s.workers();
    ASSERT_TRUE(s.server().signal(signum));
    EXPECT_EQ(s.server().wait_exit(20s), std::optional<int>(0)) << s.server().log();
    for (pid_t pid : workers) EXPECT_TRUE(wait_gone(pid, 5s)) << strsignal(signum) << ": program " << pid;
    for (pid_t child : children_of(getpid())) ADD_FAILURE() << "left running: " << child;
  }
}

// The same address served by built-in http workers, then by a Go program, then
// by built-in workers again, each switch a reload under load: the slot sockets
// are handed over whatever runs in the slot.
TEST(ExecMode, AReloadSwitchesBetweenBuiltInWorkersAndAProgram) {
  std::string error;
  const std::string go = go_server_binary(&error);
  ASSERT_FALSE(go.empty()) << error;
  Preforkd server({.workers = 2});
  const std::string head = "workers = 2\npid_file = \"" + server.pid_file() + "\"\nuser = \"root\"\n";
  const std::string address = "address = \"127.0.0.1:" + std::to_string(server.http_port()) + "\"\n";
  const std::string builtin = head + "[[listen]]\nname = \"http\"\n" + address + "protocol = \"http\"\nroot = \"www\"\n";
  const std::string program = head + "[exec]\ncommand = [\"" + go + "\"]\n[[listen]]\nname = \"http\"\n" + address +
                              "protocol = \"tcp\"\n";
  write_file(server.config_path(), builtin);
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  LoadClient load(LoadClient::Kind::http_close, "127.0.0.1", server.http_port(), 2);
  std::this_thread::sleep_for(300ms);
  for (int step = 1; step <= 4; ++step) {
    write_file(server.config_path(), step % 2 ? program : builtin);
    ASSERT_TRUE(server.signal(SIGHUP));
    ASSERT_TRUE(server.wait_log("workers ready; retiring generation", 20s, step)) << server.log();
    std::this_thread::sleep_for(300ms);
    auto response = http_get(server.http_port(), "/hello.txt");
    ASSERT_TRUE(response);
    EXPECT_EQ(response->header("X-Generation"), step % 2 ? std::to_string(step + 1) : "")
        << "step " << step << "\n" << response->head << "\n" << server.log();
  }
  load.stop();
  std::cout << "[ figures  ] built-in <-> go x4: " << load.ok() << " ok, " << load.errors() << " failed\n";
  EXPECT_EQ(load.errors(), 0) << load.error_sample() << "\n" << server.log();
}

}  // namespace
