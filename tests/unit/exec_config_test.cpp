// [exec] in the config loader: the section itself, the program lookup, and what
// exec mode changes elsewhere in the file (listener protocols are transports,
// keys of the built-in workers are refused), each error at its FILE:LINE:COL.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/config.hpp"

namespace preforkd {
namespace {

namespace fs = std::filesystem;

constexpr const char* kTcp = "[[listen]]\nname = \"http\"\naddress = \"127.0.0.1:8000\"\nprotocol = \"tcp\"\n";

class ExecConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/preforkd-exec-config.XXXXXX";
    ASSERT_NE(mkdtemp(templ), nullptr);
    char canonical[PATH_MAX];
    ASSERT_NE(realpath(templ, canonical), nullptr);
    dir_ = canonical;
    source_ = dir_ + "/preforkd.toml";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  void write_executable(const std::string& path, mode_t mode = 0755) {
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream(path) << "#!/bin/sh\nexit 0\n";
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
  }
  Config parse(const std::string& text) { return parse_config(text, source_); }
  // "LINE:COL: KEY: message" of the ConfigError, or "(no error)".
  std::string error(const std::string& text) {
    try {
      parse_config(text, source_);
    } catch (const ConfigError& e) {
      std::string what = e.what();
      if (what.rfind(source_ + ":", 0) != 0) return "unexpected prefix: " + what;
      return what.substr(source_.size() + 1);
    }
    return "(no error)";
  }

  std::string dir_, source_;
};

TEST_F(ExecConfigTest, LoadsTheIssuesExample) {
  fs::create_directory(dir_ + "/app");
  const Config c = parse(
      "workers = 4\n"
      "[exec]\n"
      "command = [\"sh\", \"-c\", \"exec true\"]\n"
      "ready = \"notify\"\n"
      "stop_signal = \"TERM\"\n"
      "directory = \"app\"\n"
      "environment = { DJANGO_SETTINGS_MODULE = \"site.settings\", EMPTY = \"\" }\n" +
      std::string(kTcp) +
      "[[listen]]\nname = \"dns\"\naddress = \"127.0.0.1:8000\"\nprotocol = \"udp\"\n");
  ASSERT_TRUE(c.exec.enabled());
  EXPECT_EQ(c.exec.command, (std::vector<std::string>{"sh", "-c", "exec true"}));
  EXPECT_EQ(c.exec.program.front(), '/') << c.exec.program;  // found in PATH
  EXPECT_TRUE(c.exec.ready_on_notify());
  EXPECT_EQ(c.exec.stop_signal, SIGTERM);
  EXPECT_EQ(c.exec.reopen_signal, SIGUSR1);
  EXPECT_EQ(c.exec.start_timeout_s, kDefaultExecStartTimeoutS);
  EXPECT_EQ(c.exec.directory, dir_ + "/app");
  EXPECT_EQ(c.exec.environment,
            (std::vector<std::pair<std::string, std::string>>{{"DJANGO_SETTINGS_MODULE", "site.settings"}, {"EMPTY", ""}}));
  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_EQ(c.listeners[0].protocol, (ProtocolRef{"tcp", Transport::stream}));
  EXPECT_FALSE(is_datagram(c.listeners[0].protocol));
  EXPECT_EQ(c.listeners[1].protocol, (ProtocolRef{"udp", Transport::datagram}));
  EXPECT_TRUE(is_datagram(c.listeners[1].protocol));  // a TCP and a UDP listener may share an address
}

TEST_F(ExecConfigTest, ReadinessByDurationSignalsAndTimeout) {
  Config c = parse("[exec]\ncommand = [\"sh\"]\nready = \"2s\"\nstart_timeout = \"30s\"\nstop_signal = \"SIGQUIT\"\n"
                   "reopen_signal = \"none\"\n" + std::string(kTcp));
  EXPECT_EQ(c.exec.ready_after_s, 2.0);
  EXPECT_FALSE(c.exec.ready_on_notify());
  EXPECT_EQ(c.exec.start_timeout_s, 30.0);
  EXPECT_EQ(c.exec.stop_signal, SIGQUIT);
  EXPECT_EQ(c.exec.reopen_signal, 0);
  c = parse("[exec]\ncommand = [\"sh\"]\nready = 1.5\nreopen_signal = \"HUP\"\n" + std::string(kTcp));
  EXPECT_EQ(c.exec.ready_after_s, 1.5);
  EXPECT_EQ(c.exec.reopen_signal, SIGHUP);
  // The units every duration of the config takes (common/duration.hpp).
  c = parse("[exec]\ncommand = [\"sh\"]\nready = \"1500ms\"\nstart_timeout = \"1m30s\"\n" + std::string(kTcp));
  EXPECT_EQ(c.exec.ready_after_s, 1.5);
  EXPECT_EQ(c.exec.start_timeout_s, 90.0);
  const std::string bad = error("[exec]\ncommand = [\"sh\"]\nstart_timeout = \"2 fortnights\"\n" + std::string(kTcp));
  EXPECT_EQ(bad.rfind("3:17: exec.start_timeout: \"2 fortnights\": ", 0), 0u) << bad;
}

TEST_F(ExecConfigTest, WithoutExecNothingChanges) {
  const Config c = parse("[[listen]]\naddress = \"127.0.0.1:9007\"\nprotocol = \"tcp-echo\"\n");
  EXPECT_FALSE(c.exec.enabled());
  EXPECT_TRUE(c.exec.program.empty());
}

TEST_F(ExecConfigTest, FindsTheProgramWhereItWillRun) {
  // A path with '/' is taken against `directory` when there is one, else against
  // the config file's directory, like every other relative path in the file.
  write_executable(dir_ + "/bin/serve");
  write_executable(dir_ + "/app/bin/serve");
  EXPECT_EQ(parse("[exec]\ncommand = [\"bin/serve\"]\n" + std::string(kTcp)).exec.program, dir_ + "/bin/serve");
  EXPECT_EQ(parse("[exec]\ncommand = [\"./bin/serve\", \"--flag\"]\ndirectory = \"app\"\n" + std::string(kTcp))
                .exec.program,
            dir_ + "/app/./bin/serve");
  // A bare name is looked up in PATH, [exec].environment's PATH first.
  EXPECT_EQ(parse("[exec]\ncommand = [\"serve\"]\nenvironment = { PATH = \"relative:" + dir_ + "/app/bin:" + dir_ +
                  "/bin\" }\n" + std::string(kTcp))
                .exec.program,
            dir_ + "/app/bin/serve");
}

TEST_F(ExecConfigTest, AProgramThatCannotRunIsAnErrorAtItsPosition) {
  EXPECT_EQ(error("[exec]\ncommand = [\"no-such-program-xyz\", \"a\"]\nenvironment = { PATH = \"/nonexistent\" }\n" +
                  std::string(kTcp)),
            "2:12: exec.command: \"no-such-program-xyz\" not found in PATH (/nonexistent)");
  EXPECT_EQ(error("[exec]\ncommand = [\"missing/serve\"]\n" + std::string(kTcp)),
            "2:12: exec.command: " + dir_ + "/missing/serve: No such file or directory");
  write_executable(dir_ + "/plain", 0644);
  if (::geteuid() == 0) {
    // root may execute anything with an execute bit, and nothing without one.
    EXPECT_EQ(error("[exec]\ncommand = [\"./plain\"]\n" + std::string(kTcp)),
              "2:12: exec.command: " + dir_ + "/plain: Permission denied");
  }
  fs::create_directory(dir_ + "/adir");
  EXPECT_EQ(error("[exec]\ncommand = [\"adir\"]\nenvironment = { PATH = \"" + dir_ + "\" }\n" + std::string(kTcp)),
            "2:12: exec.command: " + dir_ + "/adir: Is a directory");
}

TEST_F(ExecConfigTest, SectionErrors) {
  const std::string tcp(kTcp);
  EXPECT_EQ(error("[exec]\nready = \"notify\"\n" + tcp),
            "1:1: exec.command: missing required key: the program to run and its arguments, e.g. [\"gunicorn\", "
            "\"app:app\"]");
  EXPECT_EQ(error("[exec]\ncommand = \"gunicorn app:app\"\n" + tcp),
            "2:11: exec.command: expected an array of strings, the program and its arguments (no shell): "
            "[\"gunicorn\", \"--workers\", \"1\", \"app:app\"]");
  EXPECT_EQ(error("[exec]\ncommand = []\n" + tcp), "2:11: exec.command: must name a program");
  EXPECT_EQ(error("[exec]\ncommand = [\"sh\", 1]\n" + tcp), "2:18: exec.command: expected string (quote numbers: \"1\")");
  EXPECT_EQ(error("[exec]\ncommand = [\"\"]\n" + tcp), "2:12: exec.command: the program name is empty");
  EXPECT_EQ(error("[exec]\ncommand = [\"sh\"]\nstop_sigal = \"TERM\"\n" + tcp), "3:1: exec.stop_sigal: unknown key");
  EXPECT_EQ(error("[exec]\ncommand = [\"sh\"]\nstop_signal = \"STOP\"\n" + tcp),
            "3:15: exec.stop_signal: unknown signal \"STOP\" (expected TERM, INT, QUIT, HUP, USR1, USR2, WINCH or KILL)");
  EXPECT_EQ(error("[exec]\ncommand = [\"sh\"]\nstop_signal = \"none\"\n" + tcp),
            "3:15: exec.stop_signal: unknown signal \"none\" (expected TERM, INT, QUIT, HUP, USR1, USR2, WINCH or KILL)");
  EXPECT_EQ(error("[exec]\ncommand = [\"sh\"]\nready = \"soon\"\n" + tcp).substr(0, 20), "3:9: exec.ready: \"so");
  EXPECT_EQ(error("[exec]\ncommand = [\"sh\"]\nready = \"10s\"\n" + tcp),
            "3:9: exec.ready: must be shorter than exec.start_timeout (10.000000 s), or no worker could be ready in time");
  EXPECT_EQ(error("[exec]\ncommand = [\"sh\"]\ndirectory = \"nowhere\"\n" + tcp),
            "3:13: exec.directory: " + dir_ + "/nowhere: No such file or directory");
  EXPECT_EQ(error("exec = 1\n" + tcp), "1:8: exec: expected table");
}

TEST_F(ExecConfigTest, EnvironmentErrors) {
  const std::string head = "[exec]\ncommand = [\"sh\"]\n";
  const std::string tcp(kTcp);
  EXPECT_EQ(error(head + "environment = { LISTEN_FDS = \"3\" }\n" + tcp),
            "3:17: exec.environment.LISTEN_FDS: set by preforkd for each worker; cannot be configured");
  EXPECT_EQ(error(head + "environment = { NOTIFY_SOCKET = \"/run/x\" }\n" + tcp),
            "3:17: exec.environment.NOTIFY_SOCKET: set by preforkd for each worker; cannot be configured");
  EXPECT_EQ(error(head + "environment = { \"A-B\" = \"1\" }\n" + tcp),
            "3:17: exec.environment.A-B: not a variable name (letters, digits and _, not starting with a digit)");
  EXPECT_EQ(error(head + "environment = { WORKERS = 4 }\n" + tcp),
            "3:27: exec.environment.WORKERS: expected string (environment values are text: \"1\")");
  EXPECT_EQ(error(head + "environment = \"A=1\"\n" + tcp), "3:15: exec.environment: expected table");
}

TEST_F(ExecConfigTest, ListenersAreTransportsInExecModeOnly) {
  const std::string head = "[exec]\ncommand = [\"sh\"]\n";
  EXPECT_EQ(error(head + "[[listen]]\naddress = \"127.0.0.1:8000\"\nprotocol = \"http\"\nroot = \"/\"\n"),
            "5:12: listen[1].protocol: protocol \"http\" with [exec]: the program speaks the protocol and a listener "
            "names its transport, \"tcp\" or \"udp\"");
  EXPECT_EQ(error("[[listen]]\naddress = \"127.0.0.1:8000\"\nprotocol = \"tcp\"\n"),
            "3:12: listen[1].protocol: protocol \"tcp\" needs an [exec] program to speak it (protocols of this "
            "binary: http, tcp-echo or udp-echo)");
  EXPECT_EQ(error("[[listen]]\naddress = \"127.0.0.1:8000\"\nprotocol = \"udp\"\n"),
            "3:12: listen[1].protocol: protocol \"udp\" needs an [exec] program to speak it (protocols of this "
            "binary: http, tcp-echo or udp-echo)");
  // What a built-in worker would do with the connections is the program's business,
  // the transport's keys included.
  EXPECT_EQ(error(head + std::string(kTcp) + "send_timeout = 5\n"),
            "7:16: listen[1].send_timeout: not allowed for protocol \"tcp\"");
  EXPECT_EQ(error(head + std::string(kTcp) + "idle_timeout = 5\n"),
            "7:16: listen[1].idle_timeout: not allowed for protocol \"tcp\"");
  EXPECT_EQ(error(head + std::string(kTcp) + "root = \"/\"\n"), "7:8: listen[1].root: not allowed for protocol \"tcp\"");
  EXPECT_EQ(error(head + "[[listen]]\naddress = \"127.0.0.1:8000\"\nprotocol = \"udp\"\nmax_datagram_size = 512\n"),
            "6:21: listen[1].max_datagram_size: not allowed for protocol \"udp\"");
  // Socket settings stay.
  const Config c = parse(head + std::string(kTcp) + "backlog = 64\nreuseport = false\n");
  EXPECT_EQ(c.listeners[0].backlog, 64);
  EXPECT_FALSE(c.listeners[0].reuseport);
  EXPECT_EQ(error(head + std::string(kTcp) + "[[listen]]\naddress = \"127.0.0.1:8000\"\nprotocol = \"tcp\"\n"),
            "8:11: listen[2].address: duplicate address 127.0.0.1:8000 (also used by listen[1])");
}

TEST_F(ExecConfigTest, KeysOfTheBuiltInWorkersAreRefusedSayingWhy) {
  const std::string exec = "[exec]\ncommand = [\"sh\"]\n";
  const std::string tcp(kTcp);
  EXPECT_EQ(error("max_requests = 1000\n" + exec + tcp),
            "1:16: max_requests: not available with [exec]: preforkd never sees a program's requests, so it cannot "
            "count them; recycle inside the program (gunicorn --max-requests restarts its worker inside the process "
            "preforkd runs)");
  EXPECT_EQ(error("max_requests = 10\nmax_requests_jitter = 5\n" + exec + tcp).substr(0, 16), "1:16: max_reques");
  EXPECT_EQ(error("max_connections = 10\n" + exec + tcp),
            "1:19: max_connections: not used with [exec]: it limits the built-in workers; limit connections in the "
            "program");
  EXPECT_EQ(error("[log]\naccess_log = \"access.log\"\n" + exec + tcp),
            "2:14: log.access_log: not used with [exec]: the program writes its own access log (its stdout and "
            "stderr go to the error log)");
  // Names go into LISTEN_FDNAMES, separated by ':'.
  EXPECT_EQ(error(exec + "[[listen]]\nname = \"a:b\"\naddress = \"127.0.0.1:8000\"\nprotocol = \"tcp\"\n"),
            "4:8: listen[1].name: \"a:b\" cannot go into LISTEN_FDNAMES (printable ASCII without ':', at most 255 "
            "characters)");
  EXPECT_EQ(error("[[listen]]\nname = \"a:b\"\naddress = \"127.0.0.1:8000\"\nprotocol = \"tcp-echo\"\n"), "(no error)");
}

}  // namespace
}  // namespace preforkd
