// Operability with the real binary: log lines, access log and its rotation, a full
// disk, privilege drop, worker_rlimit_nofile, max_requests recycling, WINCH.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "tests/integration/harness.hpp"
#include "tests/integration/load_client.hpp"
#include "tests/integration/proc_stats.hpp"

using namespace itest;

namespace {

// "Uid:\t0\t0\t0\t0" -> "0 0 0 0"
std::string status_words(pid_t pid, const std::string& field) {
  std::istringstream values(status_field(pid, field));
  std::string v, out;
  while (values >> v) out += (out.empty() ? "" : " ") + v;
  return out;
}

// "Max open files  4321  4321  files" -> "4321 4321"
std::string nofile_limits(pid_t pid) {
  std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/limits"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Max open files", 0) != 0) continue;
    std::istringstream values(line.substr(std::strlen("Max open files")));
    std::string soft, hard;
    values >> soft >> hard;
    return soft + " " + hard;
  }
  return "?";
}

bool alive(pid_t pid) { return !process_gone(pid); }

}  // namespace

TEST(Ops, EveryLogLineNamesTimeLevelPidAndRole) {
  Preforkd server({.workers = 2});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  ASSERT_TRUE(server.signal(SIGQUIT));
  ASSERT_TRUE(server.wait_exit(15s).has_value());
  const std::regex line_format(
      R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[(debug|info|notice|warn|error)\] (\d+) (master|worker|worker slot=\d+ gen=\d+): .+$)");
  std::istringstream in(server.log());
  std::string line;
  std::set<std::string> roles;
  std::size_t lines = 0;
  while (std::getline(in, line)) {
    ++lines;
    std::smatch m;
    ASSERT_TRUE(std::regex_match(line, m, line_format)) << "line " << lines << ": " << line;
    std::string role = m[3].str();
    roles.insert(role);
    if (role == "master") {
      EXPECT_EQ(std::stoi(m[2].str()), server.master_pid()) << line;
    }
  }
  EXPECT_GT(lines, 5u);
  EXPECT_TRUE(roles.count("master"));
  EXPECT_TRUE(roles.count("worker slot=0 gen=1")) << server.log();
  EXPECT_TRUE(roles.count("worker slot=1 gen=1")) << server.log();
}

TEST(Ops, AccessLogWritesCombinedLogFormat) {
  Preforkd server({.workers = 1, .log_config = "access_log = \"access.log\"\n"});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  auto r = http_get(server.http_port(), "/hello.txt", "Referer: http://ref.example/\r\nUser-Agent: itest \"quoted\"\r\n");
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->status, 200);
  r = http_get(server.http_port(), "/missing", "", "HEAD");
  ASSERT_TRUE(r.has_value());
  std::string text = read_file(server.dir() + "/access.log");
  const std::regex get_line(
      R"(127\.0\.0\.1 - - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET /hello\.txt HTTP/1\.1" 200 20 "http://ref\.example/" "itest \\x22quoted\\x22"\n)");
  const std::regex head_line(R"(127\.0\.0\.1 - - \[[^\]]+\] "HEAD /missing HTTP/1\.1" 404 0 "-" "-"\n)");
  EXPECT_TRUE(std::regex_search(text, get_line)) << text;
  EXPECT_TRUE(std::regex_search(text, head_line)) << text;
  EXPECT_EQ(count_of(text, "\n"), 2u) << text;
}

// What logrotate does: rename the files, then USR1 (here `preforkd -s reopen`),
// while a client keeps making requests. Every request must be logged exactly once
// across the old and the new file, and requests made once every process has
// reopened must be in the new file.
TEST(Ops, ReopenUnderLoadLosesAndDuplicatesNoAccessLogLine) {
  Preforkd server({.workers = 2, .log_config = "access_log = \"access.log\"\n", .error_log_to_file = true});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  const std::string access = server.dir() + "/access.log", error_log = server.dir() + "/preforkd.log";

  std::atomic<bool> stop{false};
  std::atomic<int> sent{0};
  std::atomic<int> failures{0};
  std::thread client([&] {
    // Sequential and bounded: at most 5000 requests or 60 s.
    auto deadline = std::chrono::steady_clock::now() + 60s;
    for (int i = 0; i < 5000 && !stop && std::chrono::steady_clock::now() < deadline; ++i) {
      auto r = http_get(server.http_port(), "/req-" + std::to_string(i));
      if (!r || r->status != 404) ++failures;
      sent = i + 1;
    }
  });
  auto wait_sent = [&](int n) {
    for (int i = 0; i < 1000 && sent < n; ++i) std::this_thread::sleep_for(10ms);
    return sent >= n;
  };
  ASSERT_TRUE(wait_sent(100));
  ASSERT_EQ(rename(access.c_str(), (access + ".1").c_str()), 0) << std::strerror(errno);
  ASSERT_EQ(rename(error_log.c_str(), (error_log + ".1").c_str()), 0) << std::strerror(errno);
  std::string output;
  EXPECT_EQ(server.run_cli("-s reopen", &output), 0) << output;
  // The master's and both workers' lines in the new error log.
  bool reopened = server.wait_log("logs reopened", 10s, 3);
  const int after_reopen = sent;
  EXPECT_TRUE(wait_sent(after_reopen + 100));
  stop = true;
  client.join();
  ASSERT_TRUE(reopened) << server.log();
  const int total = sent;
  EXPECT_EQ(failures, 0);

  std::string old_text = read_file(access + ".1"), new_text = read_file(access);
  std::map<int, int> in_old, in_new;
  const std::regex request(R"("GET /req-(\d+) HTTP/1\.1" 404 )");
  for (auto [text, counts] : {std::pair{&old_text, &in_old}, std::pair{&new_text, &in_new}})
    for (std::sregex_iterator it(text->begin(), text->end(), request), end; it != end; ++it)
      ++(*counts)[std::stoi((*it)[1].str())];
  int missing = 0, duplicated = 0, late_in_old = 0;
  auto count = [](const std::map<int, int>& m, int i) {
    auto it = m.find(i);
    return it == m.end() ? 0 : it->second;
  };
  for (int i = 0; i < total; ++i) {
    int n = count(in_old, i) + count(in_new, i);
    missing += n == 0;
    duplicated += n > 1;
    if (i >= after_reopen && count(in_old, i) != 0) ++late_in_old;
  }
  std::cout << "[ figures  ] " << total << " requests: " << in_old.size() << " in the renamed file, " << in_new.size()
            << " in the new one; reopen done after request " << after_reopen << "\n";
  EXPECT_EQ(missing, 0);
  EXPECT_EQ(duplicated, 0);
  EXPECT_EQ(late_in_old, 0);
  EXPECT_GE(in_old.size(), 100u);
  EXPECT_GE(in_new.size(), 100u);
  EXPECT_EQ(count_of(old_text, "\n") + count_of(new_text, "\n"), static_cast<std::size_t>(total));
  // Error log lines of every process moved on to the new file.
  std::string new_errors = server.log();
  EXPECT_NE(new_errors.find("master: logs reopened"), std::string::npos) << new_errors;
  EXPECT_NE(new_errors.find("worker slot=0 gen=1: logs reopened"), std::string::npos) << new_errors;
  EXPECT_NE(new_errors.find("worker slot=1 gen=1: logs reopened"), std::string::npos) << new_errors;
  EXPECT_NE(read_file(error_log + ".1").find("all 2 workers ready"), std::string::npos);
}

// A full disk must not stop serving: the line is dropped and the failure logged,
// rate-limited. A tiny tmpfs (root) shows recovery too; else /dev/full.
TEST(Ops, FullDiskDropsAccessLogLinesButKeepsServing) {
  char tmpl[] = "/tmp/preforkd-tinyfs-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string mnt = tmpl;
  bool mounted = ::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=64k") == 0;
  if (!mounted)
    std::cout << "[ skipped  ] tmpfs: mount: " << std::strerror(errno) << "; using /dev/full (no recovery check)\n";
  struct Cleanup {
    std::string dir;
    bool mounted;
    ~Cleanup() {
      if (mounted) ::umount2(dir.c_str(), MNT_DETACH);
      ::rmdir(dir.c_str());
    }
  } cleanup{mnt, mounted};
  const std::string path = mounted ? mnt + "/access.log" : "/dev/full";
  Preforkd server({.workers = 2, .log_config = "access_log = \"" + path + "\"\n"});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  if (mounted) {
    ASSERT_EQ(http_get(server.http_port(), "/hello.txt")->status, 200);
    ASSERT_NE(read_file(path).find("GET /hello.txt"), std::string::npos);
    // Fill the file system to the last byte.
    std::ofstream filler(mnt + "/filler", std::ios::binary);
    std::string block(4096, 'x');
    for (int i = 0; i < 64 && filler.write(block.data(), block.size()); ++i) filler.flush();
    filler.close();
    std::ofstream tail(mnt + "/filler2", std::ios::binary);
    for (int i = 0; i < 4096 && tail.put('x'); ++i) tail.flush();
  }
  int ok = 0;
  for (int i = 0; i < 200; ++i) {
    auto r = http_get(server.http_port(), "/hello.txt");
    ok += r && r->status == 200;
  }
  EXPECT_EQ(ok, 200);
  ASSERT_TRUE(server.wait_log("No space left on device", 5s)) << server.log();
  // At most one report per worker per minute, however many lines were dropped.
  EXPECT_LE(count_of(server.log(), "No space left on device"), 2u) << server.log();
  if (mounted) {
    ::unlink((mnt + "/filler").c_str());
    ::unlink((mnt + "/filler2").c_str());
    std::string before = read_file(path);
    for (int i = 0; i < 20; ++i) ASSERT_EQ(http_get(server.http_port(), "/hello.txt?again")->status, 200);
    EXPECT_NE(read_file(path).find("GET /hello.txt?again"), std::string::npos);
    EXPECT_TRUE(server.wait_log("writing again", 5s)) << server.log();
  }
  server.signal(SIGTERM);
  server.wait_exit(10s);
}

TEST(Ops, WorkersDropPrivilegesAndRaiseTheirFdLimit) {
  if (geteuid() != 0) GTEST_SKIP() << "not root: workers cannot switch users (uid " << geteuid() << ")";
  Preforkd server({.workers = 2,
                   .user = "nobody",
                   .top_config = "group = \"nogroup\"\nworker_rlimit_nofile = 4321\n",
                   .log_config = "access_log = \"access.log\"\n"});
  // The test directory is mkdtemp's 0700: nobody must be able to reach the files.
  ASSERT_EQ(chmod(server.dir().c_str(), 0755), 0);
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  auto workers = server.worker_pids();
  ASSERT_EQ(workers.size(), 2u);
  for (pid_t w : workers) {
    EXPECT_EQ(status_words(w, "Uid"), "65534 65534 65534 65534") << w;
    EXPECT_EQ(status_words(w, "Gid"), "65534 65534 65534 65534") << w;
    EXPECT_EQ(status_words(w, "Groups"), "65534") << w;
    EXPECT_EQ(nofile_limits(w), "4321 4321") << w;
  }
  EXPECT_EQ(status_words(server.master_pid(), "Uid"), "0 0 0 0");
  EXPECT_EQ(status_words(server.master_pid(), "Gid"), "0 0 0 0");
  EXPECT_NE(nofile_limits(server.master_pid()), "4321 4321");
  auto r = http_get(server.http_port(), "/hello.txt");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello from preforkd\n");

  // The master gave the access log to the workers' user, so that they can open
  // the new file after a rotation although they are no longer root.
  const std::string access = server.dir() + "/access.log";
  struct stat st {};
  ASSERT_EQ(stat(access.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);
  ASSERT_EQ(rename(access.c_str(), (access + ".1").c_str()), 0);
  ASSERT_TRUE(server.signal(SIGUSR1));
  ASSERT_TRUE(server.wait_log("logs reopened", 10s, 3)) << server.log();
  ASSERT_EQ(http_get(server.http_port(), "/after-rotation")->status, 404);
  EXPECT_NE(read_file(access).find("GET /after-rotation"), std::string::npos) << server.log();
  EXPECT_EQ(server.log().find("reopen log:"), std::string::npos) << server.log();

  // Unprivileged workers still die with their master.
  workers = server.worker_pids();
  ASSERT_TRUE(server.signal(SIGKILL));
  ASSERT_TRUE(server.wait_exit(2s));
  for (pid_t w : workers) EXPECT_TRUE(wait_gone(w, 3s)) << "worker " << w << " outlived its master";
}

TEST(Ops, RootMasterWithoutUserRefusesToStart) {
  if (geteuid() != 0) GTEST_SKIP() << "not root: the refusal applies to a root master only";
  Preforkd server({.workers = 1, .user = ""});
  std::string why;
  EXPECT_FALSE(server.start(3s, &why));
  auto code = server.wait_exit(5s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 1);
  EXPECT_NE(server.log().find("running as root without `user`"), std::string::npos) << server.log();
}

TEST(Ops, ReloadThatDropsUserAsRootIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "not root: the refusal applies to a root master only";
  Preforkd server({.workers = 1});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  auto before = server.worker_pids();
  std::string config = read_file(server.config_path());
  auto at = config.find("user = \"root\"\n");
  ASSERT_NE(at, std::string::npos);
  write_file(server.config_path(), config.erase(at, std::strlen("user = \"root\"\n")));
  ASSERT_TRUE(server.signal(SIGHUP));
  ASSERT_TRUE(server.wait_log("reload failed", 10s)) << server.log();
  EXPECT_NE(server.log().find("reload: " + server.config_path() + ": running as root without `user`"),
            std::string::npos)
      << server.log();
  EXPECT_EQ(server.worker_pids(), before);
}

// max_requests = 50 under a Connection: close load: workers are replaced again and
// again through the successor-first handover, and the client sees no failure.
TEST(Ops, MaxRequestsRecyclesWorkersWithoutLosingARequest) {
  Preforkd server({.workers = 2, .top_config = "max_requests = 50\nmax_requests_jitter = 10\n"});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  std::set<pid_t> seen;
  for (pid_t w : server.worker_pids()) seen.insert(w);
  LoadClient http(LoadClient::Kind::http_close, "127.0.0.1", server.http_port(), 2);
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline && count_of(server.log(), "ready; retiring worker") < 6) {
    for (pid_t w : server.worker_pids()) seen.insert(w);
    std::this_thread::sleep_for(50ms);
  }
  http.stop();
  const std::size_t recycles = count_of(server.log(), "ready; retiring worker");
  std::cout << "[ figures  ] max_requests=50: " << recycles << " recycles, " << seen.size() << " worker pids seen, http "
            << http.ok() << " ok / " << http.errors() << " failed\n";
  EXPECT_GE(recycles, 6u) << server.log();
  EXPECT_GE(seen.size(), 6u);
  EXPECT_EQ(http.errors(), 0) << http.error_sample();
  EXPECT_GT(http.ok(), 300);
  // Recycling is not a reload: the generation stays 1 and two workers serve.
  EXPECT_EQ(count_of(server.log(), "retiring generation"), 0u);
  ASSERT_TRUE(server.wait_workers(2, 15s)) << server.log();
  for (pid_t w : server.worker_pids()) {
    std::string cmd = read_file("/proc/" + std::to_string(w) + "/cmdline");
    EXPECT_NE(cmd.find(std::string("--generation\0001\0", 15)), std::string::npos);
  }
}

// TTIN, WINCH, then HUP back to the config's worker count: connections queued on
// the extra slot's socket while parked must be served (by a worker started to
// drain it) before the socket is closed, not reset with it.
TEST(Ops, ParkedExtraSlotIsDrainedNotResetByTheReloadThatDropsIt) {
  Preforkd server({.workers = 2});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  const std::string request = "GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  constexpr int kCycles = 5;
  std::size_t sent = 0, answered = 0;
  for (int cycle = 0; cycle < kCycles; ++cycle) {
    ASSERT_TRUE(server.signal(SIGTTIN));
    ASSERT_TRUE(server.wait_log("all 3 workers ready", 10s, static_cast<std::size_t>(cycle + 1))) << server.log();
    ASSERT_TRUE(server.signal(SIGWINCH));
    ASSERT_TRUE(server.wait_workers(0, 10s)) << server.log();
    // Parked: these queue on the three kept sockets, a third on slot 2's.
    std::vector<int> queued;
    for (int i = 0; i < 30; ++i) {
      int fd = connect_tcp("127.0.0.1", server.http_port());
      if (fd >= 0 && send_all(fd, request)) queued.push_back(fd);
      else if (fd >= 0) close(fd);
    }
    ASSERT_TRUE(server.signal(SIGHUP));
    for (int fd : queued) {
      std::string carry;
      auto r = read_response(fd, &carry, false, 10s);
      answered += r && r->status == 200;
      close(fd);
    }
    sent += queued.size();
    ASSERT_TRUE(server.wait_workers(2, 10s)) << server.log();
  }
  std::cout << "[ figures  ] " << kCycles << " x (TTIN, WINCH, 30 connections, HUP to 2 workers): " << answered
            << " of " << sent << " answered\n";
  EXPECT_EQ(answered, sent) << server.log();
  EXPECT_GE(sent, static_cast<std::size_t>(kCycles * 25));
}

// QUIT while a max_requests successor is starting: the master must exit once its
// workers are gone, whichever of the two exits last (it used to wait forever when
// the successor was the last). Several rounds, each QUIT sent as soon as a
// successor is announced.
TEST(Ops, QuitDuringAMaxRequestsRecycleExitsWithinItsBound) {
  constexpr int kRounds = 6;
  int exited = 0;
  for (int round = 0; round < kRounds; ++round) {
    Preforkd server({.workers = 2, .graceful_timeout = 2, .top_config = "max_requests = 5\n"});
    std::string why;
    ASSERT_TRUE(server.start(10s, &why)) << why;
    LoadClient http(LoadClient::Kind::http_close, "127.0.0.1", server.http_port(), 2);
    bool announced = false;
    for (int poll = 0; poll < 5000 && !announced; ++poll) {
      announced = server.log().find("starting successor") != std::string::npos;
      if (!announced) std::this_thread::sleep_for(1ms);
    }
    ASSERT_TRUE(announced) << server.log();
    ASSERT_TRUE(server.signal(SIGQUIT));
    // graceful_timeout (2 s) bounds the drain; the rest is slack for a loaded machine.
    auto code = server.wait_exit(10s);
    http.stop();
    const std::string log = server.log();
    if (!code) {
      ADD_FAILURE() << "round " << round + 1 << ": the master did not exit within 10 s of QUIT\n" << log;
      break;
    }
    ++exited;
    EXPECT_EQ(*code, 0) << log;
  }
  std::cout << "[ figures  ] " << exited << " of " << kRounds << " masters exited after QUIT during a recycle\n";
}

// WINCH: the workers stop gracefully, the master stays and keeps its sockets; a
// connection made meanwhile waits in the backlog and is answered after HUP.
TEST(Ops, WinchStopsTheWorkersAndHupBringsThemBack) {
  Preforkd server({.workers = 2});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  auto before = server.worker_pids();
  ASSERT_TRUE(server.signal(SIGWINCH));
  ASSERT_TRUE(server.wait_workers(0, 10s)) << server.log();
  for (pid_t w : before) EXPECT_TRUE(wait_gone(w, 5s));
  std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(alive(server.master_pid()));
  EXPECT_TRUE(server.worker_pids().empty());

  // Nobody serves: the request is not answered while parked.
  int fd = connect_tcp("127.0.0.1", server.http_port());
  std::string carry;
  if (fd >= 0) {
    ASSERT_TRUE(send_all(fd, "GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    EXPECT_FALSE(read_response(fd, &carry, false, 500ms).has_value());
  } else {
    std::cout << "[ note     ] connect refused while parked\n";
  }

  ASSERT_TRUE(server.signal(SIGHUP));
  ASSERT_TRUE(server.wait_log("all 2 workers ready", 10s, 2)) << server.log();
  EXPECT_EQ(server.worker_pids().size(), 2u);
  if (fd >= 0) {
    // The connection queued in the kept socket is served by the new generation.
    auto late = read_response(fd, &carry, false, 5s);
    ASSERT_TRUE(late.has_value()) << server.log();
    EXPECT_EQ(late->status, 200);
    close(fd);
  }
  auto r = http_get(server.http_port(), "/hello.txt");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(alive(server.master_pid()));  // the master never went away
}
