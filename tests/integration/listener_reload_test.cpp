// Reloads that change a listener's socket settings: what an operator sees in
// `ss` and in the error log, with the real binary.
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/harness.hpp"

using namespace itest;

namespace {

// The Send-Q column of `ss -ltn` for each listening TCP socket on port: the
// accept queue limit the kernel applies.
std::vector<int> listen_backlogs(int port) {
  std::string command = "ss -Hltn 'sport = :" + std::to_string(port) + "' 2>/dev/null";
  std::vector<int> backlogs;
  FILE* ss = ::popen(command.c_str(), "r");
  if (!ss) return backlogs;
  char line[512];
  while (std::fgets(line, sizeof line, ss)) {
    std::istringstream fields(line);
    std::string state;
    int recv_q = 0, send_q = 0;
    if (fields >> state >> recv_q >> send_q) backlogs.push_back(send_q);
  }
  ::pclose(ss);
  return backlogs;
}

void edit_config(const Preforkd& server, const std::string& from, const std::string& to) {
  std::string config = read_file(server.config_path());
  auto at = config.find(from);
  ASSERT_NE(at, std::string::npos) << config;
  write_file(server.config_path(), config.replace(at, from.size(), to));
}

TEST(ListenerReload, BacklogChangeReachesTheLiveSockets) {
  Preforkd server({.workers = 2, .web_config = "backlog = 32"});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  EXPECT_EQ(listen_backlogs(server.http_port()), (std::vector<int>{32, 32}));
  edit_config(server, "backlog = 32", "backlog = 200");
  ASSERT_TRUE(server.signal(SIGHUP));
  ASSERT_TRUE(server.wait_log("retiring generation", 10s)) << server.log();
  EXPECT_EQ(listen_backlogs(server.http_port()), (std::vector<int>{200, 200})) << server.log();
  auto response = http_get(server.http_port(), "/");
  ASSERT_TRUE(response.has_value());
  EXPECT_NE(response->status, 0);
}

TEST(ListenerReload, ReuseportChangeFailsTheReloadClearly) {
  Preforkd server({.workers = 2, .echo_config = "reuseport = true"});
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  auto before = server.worker_pids();
  edit_config(server, "reuseport = true", "reuseport = false");
  ASSERT_TRUE(server.signal(SIGHUP));
  ASSERT_TRUE(server.wait_log("reload failed", 10s)) << server.log();
  EXPECT_NE(server.log().find("listener echo: changing reuseport needs a restart"), std::string::npos)
      << server.log();
  EXPECT_EQ(server.worker_pids(), before);
  EXPECT_EQ(listen_backlogs(server.echo_port()).size(), 2u) << "a slot socket of echo was closed";
}

}  // namespace
