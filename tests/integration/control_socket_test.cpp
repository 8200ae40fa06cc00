// The control socket with the real binary: where it is and who may use it, its
// protocol's answers to good and bad requests, stale and contested socket files,
// and clients that misbehave, none of which may block or crash the master.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "tests/integration/harness.hpp"
#include "tests/integration/unix_client.hpp"

using namespace itest;

namespace {

std::string control_path(const Preforkd& server) { return server.dir() + "/preforkd.sock"; }

// The one reply line of a request the master answers with one line.
nlohmann::json only_reply(const std::string& answer) {
  EXPECT_FALSE(answer.empty());
  EXPECT_EQ(answer.back(), '\n') << answer;
  EXPECT_EQ(answer.find('\n'), answer.size() - 1) << "more than one line: " << answer;
  return nlohmann::json::parse(answer, nullptr, false);
}

TEST(ControlSocket, NextToThePidFileMode0600OwnedByTheMasterRemovedOnExit) {
  Preforkd server({.workers = 1});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  struct stat st {};
  ASSERT_EQ(lstat(control_path(server).c_str(), &st), 0) << server.log();
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_uid, geteuid());
  EXPECT_TRUE(server.wait_log("control socket " + control_path(server), 1s)) << server.log();
  std::string out;
  EXPECT_EQ(server.run_cli("status", &out), 0) << out;
  ASSERT_TRUE(server.signal(SIGQUIT));
  EXPECT_EQ(server.wait_exit(10s), std::optional<int>(0)) << server.log();
  EXPECT_NE(lstat(control_path(server).c_str(), &st), 0) << "the socket file outlived the master";
}

// Mode 0600: another user cannot even connect; the CLI says why.
TEST(ControlSocket, AnotherUserIsKeptOut) {
  if (run_command("command -v setpriv") != 0) GTEST_SKIP() << "setpriv (util-linux) not installed";
  Preforkd server({.workers = 1});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  chmod(server.dir().c_str(), 0755);  // so that nobody can read the config the CLI loads
  std::string out;
  int rc = run_command("setpriv --reuid=65534 --regid=65534 --clear-groups " PREFORKD_BINARY " -c '" +
                           server.config_path() + "' status",
                       &out);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("Permission denied (it is mode 0600: run as the master's user)"), std::string::npos) << out;
}

TEST(ControlSocket, AnswersGoodAndBadRequestsInVersionedJsonLines) {
  Preforkd server({.workers = 2});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  const std::string path = control_path(server);

  nlohmann::json status = only_reply(control_exchange(path, "{\"version\":1,\"command\":\"status\"}\n"));
  EXPECT_EQ(status.value("version", 0), 1) << status;
  EXPECT_EQ(status.value("event", ""), "status");
  EXPECT_EQ(status["status"].value("master_pid", 0), server.master_pid());
  EXPECT_EQ(status["status"]["workers"].size(), 2u);

  auto error_of = [&](const std::string& request) {
    nlohmann::json reply = only_reply(control_exchange(path, request));
    EXPECT_EQ(reply.value("version", 0), 1) << reply;
    EXPECT_EQ(reply.value("event", ""), "error") << reply;
    return reply.value("error", "");
  };
  EXPECT_EQ(error_of("hello\n"), "not a JSON object");
  EXPECT_EQ(error_of("{\"command\":\"status\"}\n"), "no \"version\"");
  EXPECT_EQ(error_of("{\"version\":2,\"command\":\"status\"}\n"), "unsupported version 2 (this master speaks 1)");
  EXPECT_EQ(error_of("{\"version\":1,\"command\":\"launch\"}\n"), "unknown command \"launch\" (status, reload, upgrade)");
  EXPECT_EQ(error_of("{\"version\":1,\"command\":\"\xff\xfe\"}\n"), "not a JSON object") << "not UTF-8";
  EXPECT_EQ(error_of("{\"version\":1,\"command\":\"\\u0000\\n\"}\n"), std::string("unknown command \"\0\n\" (status, reload, upgrade)", 46));
  EXPECT_EQ(error_of(std::string(5000, 'x')), "request longer than 4096 bytes");
  // CRLF and a client that shuts its side after the request are fine.
  int fd = connect_unix(path);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, "{\"version\":1,\"command\":\"status\"}\r\n"));
  shutdown(fd, SHUT_WR);
  EXPECT_EQ(only_reply(read_until_close(fd)).value("event", ""), "status");
  close(fd);
  EXPECT_FALSE(process_gone(server.master_pid())) << server.log();
}

// A socket file left by a master that was killed is replaced at the next start;
// one where a master still answers is not taken over: that start fails.
TEST(ControlSocket, AStaleFileIsReplacedAndALiveOneIsNotTaken) {
  Preforkd first({.workers = 1});
  std::string why;
  ASSERT_TRUE(first.start(10s, &why)) << why;
  pid_t master = first.master_pid();
  ASSERT_EQ(kill(-master, SIGKILL), 0);  // master and workers: nobody removes the socket file
  ASSERT_TRUE(wait_gone(master, 5s));
  struct stat st {};
  ASSERT_EQ(lstat(control_path(first).c_str(), &st), 0) << "the killed master's socket file is gone";
  write_file(first.dir() + "/preforkd.log", "");  // start() waits for its first "workers ready"
  ASSERT_TRUE(first.start(10s, &why)) << why;
  std::string out;
  EXPECT_EQ(first.run_cli("status", &out), 0) << out;
  EXPECT_NE(out.find("master " + std::to_string(first.master_pid())), std::string::npos) << out;

  Preforkd second({.workers = 1, .top_config = "control_socket = \"" + control_path(first) + "\""});
  EXPECT_FALSE(second.start(3s, &why));
  EXPECT_EQ(second.wait_exit(5s), std::optional<int>(1)) << second.log();
  EXPECT_NE(second.log().find("control socket: " + control_path(first) + ": another process answers there"),
            std::string::npos)
      << second.log();
  EXPECT_EQ(first.run_cli("status", &out), 0) << "the first master lost its socket\n" << out;
}

TEST(ControlSocket, OffWhenEmptyAndWaitSaysSoWithoutSendingAnything) {
  Preforkd server({.workers = 1, .top_config = "control_socket = \"\""});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  EXPECT_TRUE(server.wait_log("control socket off", 1s)) << server.log();
  struct stat st {};
  EXPECT_NE(lstat(control_path(server).c_str(), &st), 0);
  std::string out;
  EXPECT_EQ(server.run_cli("-s reload --wait", &out), 4) << out;
  EXPECT_NE(out.find("--wait needs the control socket, which is off"), std::string::npos) << out;
  EXPECT_NE(out.find("nothing was sent"), std::string::npos) << out;
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(count_of(server.log(), "reload: starting generation"), 0u) << server.log();
  // Without --wait, -s reload signals as it always did.
  EXPECT_EQ(server.run_cli("-s reload", &out), 0) << out;
  EXPECT_TRUE(server.wait_log("generation 2: all 1 workers ready", 10s)) << server.log();
}

// Clients that connect and say nothing, trickle bytes, flood, or never read:
// bounded in number (64) and time (5 s for a request), so the master serves on,
// answers well-behaved clients once the bad ones are dropped, and never dies.
TEST(ControlSocket, MisbehavingClientsCannotBlockOrCrashTheMaster) {
  Preforkd server({.workers = 2});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  pid_t master = server.master_pid();
  const std::string path = control_path(server);
  // One request and never a read; one endless line; one byte per 100 ms.
  int mute = connect_unix(path);
  ASSERT_TRUE(send_all(mute, "{\"version\":1,\"command\":\"status\"}\n")) << strerror(errno);
  int flood = connect_unix(path);
  std::atomic<bool> stop{false};
  std::thread flooder([&] {
    std::string junk(65536, 'j');
    while (!stop && send_all(flood, junk)) {
    }
  });
  std::thread trickler([&] {
    int fd = connect_unix(path);
    for (int i = 0; i < 30 && !stop && fd >= 0; ++i) {
      if (!send_all(fd, "{")) break;
      std::this_thread::sleep_for(100ms);
    }
    if (fd >= 0) close(fd);
  });
  // Then more silent ones than the cap: those beyond it are closed at once.
  std::vector<int> idle;
  for (int i = 0; i < 100; ++i) idle.push_back(connect_unix(path));
  for (int fd : idle) ASSERT_GE(fd, 0) << strerror(errno);
  // The workers serve throughout.
  for (int i = 0; i < 20; ++i) {
    auto r = http_get(server.http_port(), "/hello.txt");
    ASSERT_TRUE(r && r->status == 200) << "request " << i << "\n" << server.log();
  }
  EXPECT_TRUE(server.wait_log("control: 64 connections open; closing a new one", 2s)) << server.log();
  // Once the silent ones have been dropped (5 s), status answers again.
  std::string out;
  bool answered = false;
  for (auto deadline = std::chrono::steady_clock::now() + 15s; !answered && std::chrono::steady_clock::now() < deadline;
       std::this_thread::sleep_for(200ms))
    answered = server.run_cli("status", &out) == 0;
  EXPECT_TRUE(answered) << out << server.log();
  stop = true;
  flooder.join();
  trickler.join();
  for (int fd : idle) close(fd);
  close(mute);
  close(flood);
  // Many well-behaved clients at once.
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int i = 0; i < 20; ++i)
    clients.emplace_back([&] { ok += server.run_cli("status") == 0; });
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok, 20) << server.log();
  EXPECT_FALSE(process_gone(master));
  EXPECT_EQ(server.master_pid(), master);
}

}  // namespace
