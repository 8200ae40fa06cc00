// Checks shared by the binary-upgrade tests (upgrade_test.cpp, handover_test.cpp):
// the pid file and .oldbin, the serving master's workers, no orphans.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/harness.hpp"

namespace itest {

inline bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

inline pid_t pid_in_file(const std::string& path) {
  std::string text = read_file(path);
  return text.empty() ? 0 : static_cast<pid_t>(std::stoi(text));
}

// The state an operator expects once no upgrade is in progress.
inline void expect_settled(const Preforkd& server, pid_t master, std::size_t workers) {
  EXPECT_EQ(read_file(server.pid_file()), std::to_string(master) + "\n") << server.log();
  EXPECT_FALSE(exists(server.pid_file() + ".oldbin")) << server.log();
  EXPECT_FALSE(exists(server.dir() + "/preforkd.sock.oldbin")) << server.log();
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (children_of(master).size() != workers && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  EXPECT_EQ(children_of(master).size(), workers) << server.log();
  for (int i = 0; i < 10; ++i) {
    auto response = http_get(server.http_port(), "/hello.txt");
    ASSERT_TRUE(response && response->status == 200) << "request " << i << "\n" << server.log();
  }
  // The test process is a subreaper: a worker whose master died would be our child.
  for (pid_t child : children_of(getpid()))
    EXPECT_TRUE(child == master || child == server.master_pid()) << "orphan process " << child << "\n" << server.log();
}

// The pid of the new master, from the old master's "upgrade: new master PID started" line.
inline pid_t successor_of(const Preforkd& server, std::size_t nth = 1) {
  std::regex line(R"(upgrade: new master (\d+) started)");
  for (auto deadline = std::chrono::steady_clock::now() + 5s; std::chrono::steady_clock::now() < deadline;
       std::this_thread::sleep_for(10ms)) {
    std::string log = server.log();
    std::vector<pid_t> pids;
    for (std::sregex_iterator it(log.begin(), log.end(), line), end; it != end; ++it)
      pids.push_back(static_cast<pid_t>(std::stoi((*it)[1])));
    if (pids.size() >= nth) return pids[nth - 1];
  }
  return 0;
}

}  // namespace itest
