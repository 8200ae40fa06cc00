// What the master hands an exec-mode worker's trampoline: its command line, both
// ways, and the program's environment.
#include "common/exec_launch.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace preforkd {
namespace {

ExecLaunch sample() {
  ExecLaunch launch;
  launch.slot = 3;
  launch.generation = 7;
  launch.master_pid = 4242;
  launch.fd_count = 2;
  launch.user = "nobody";
  launch.uid = 65534;
  launch.gid = 65534;
  launch.nofile = 65536;
  launch.directory = "/srv/app dir";
  launch.program = "/usr/bin/gunicorn";
  // The program's own arguments may look like anything, "--" and "KEY=VALUE" included.
  launch.argv = {"gunicorn", "--", "x=y", "", "--exec-trampoline"};
  return launch;
}

TEST(ExecLaunch, RoundTrips) {
  const ExecLaunch launch = sample();
  std::vector<std::string> args = encode_trampoline_args(launch);
  ASSERT_GE(args.size(), 2u);
  EXPECT_EQ(args[0], "preforkd: exec slot 3");
  EXPECT_EQ(args[1], kExecTrampolineFlag);
  std::string error;
  auto decoded = decode_trampoline_args(args, &error);
  ASSERT_TRUE(decoded) << error;
  EXPECT_EQ(*decoded, launch);
  ExecLaunch plain = sample();
  plain.user.clear();
  plain.directory.clear();
  decoded = decode_trampoline_args(encode_trampoline_args(plain), &error);
  ASSERT_TRUE(decoded) << error;
  EXPECT_EQ(*decoded, plain);
}

TEST(ExecLaunch, RejectsWhatTheMasterNeverSends) {
  const std::vector<std::string> good = encode_trampoline_args(sample());
  auto rejects = [](std::vector<std::string> args, const std::string& expected) {
    std::string error;
    EXPECT_FALSE(decode_trampoline_args(args, &error));
    EXPECT_EQ(error, expected);
  };
  rejects({"x"}, "expected --exec-trampoline");
  rejects({"x", "--worker"}, "expected --exec-trampoline");
  auto with = [&](std::size_t index, std::string arg) {
    std::vector<std::string> args = good;
    args[index] = std::move(arg);
    return args;
  };
  rejects(with(2, "slot"), "not KEY=VALUE: \"slot\"");
  rejects(with(2, "slot=-1"), "bad \"slot=-1\"");
  rejects(with(2, "slot=1x"), "bad \"slot=1x\"");
  rejects(with(4, "master=0"), "bad \"master=0\"");
  rejects(with(5, "fds=99999"), "bad \"fds=99999\"");
  rejects(with(2, "colour=blue"), "bad \"colour=blue\"");
  rejects(with(3, "slot=2"), "\"slot\" given twice");
  std::vector<std::string> short_args(good.begin(), good.begin() + 5);
  rejects(short_args, "no \"--\" before the program's arguments");
  std::vector<std::string> missing = good;
  missing.erase(missing.begin() + 6);  // user=
  rejects(missing, "missing settings (9 of 10 given)");
  std::vector<std::string> no_argv(good.begin(), good.begin() + 13);
  rejects(no_argv, "no program to run");
}

TEST(ExecLaunch, EnvironmentReplacesWhatPreforkdSets) {
  ExecConfig exec;
  exec.command = {"app"};
  exec.environment = {{"APP_MODE", "prod"}, {"PATH", "/opt/app/bin"}};
  ExecWorkerEnvironment worker;
  worker.slot = 1;
  worker.generation = 5;
  worker.fd_names = {"http", "dns"};
  worker.notify_socket = "@preforkd/1/1/5/9";
  worker.watchdog_usec = 30'000'000;
  // The master's environment, with what systemd gave the master itself.
  const std::vector<std::string> inherited = {"HOME=/root",          "PATH=/usr/bin",        "LISTEN_FDS=1",
                                              "LISTEN_PID=1",        "NOTIFY_SOCKET=/run/n", "WATCHDOG_USEC=5",
                                              "PREFORKD_SLOT=9",     "not-an-assignment",    "APP_MODE=dev"};
  std::vector<std::string> env = exec_environment(inherited, exec, worker);
  std::sort(env.begin(), env.end());
  EXPECT_EQ(env, (std::vector<std::string>{"APP_MODE=prod", "HOME=/root", "LISTEN_FDNAMES=http:dns", "LISTEN_FDS=2",
                                           "NOTIFY_SOCKET=@preforkd/1/1/5/9", "PATH=/opt/app/bin",
                                           "PREFORKD_GENERATION=5", "PREFORKD_SLOT=1", "WATCHDOG_USEC=30000000"}));
}

}  // namespace
}  // namespace preforkd
