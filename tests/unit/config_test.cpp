#include "common/config.hpp"

#include <gtest/gtest.h>
#include <cstdio>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

namespace preforkd {
namespace {

namespace fs = std::filesystem;

// A listener that is valid on its own, for tests about something else.
constexpr std::string_view kEcho =
    "[[listen]]\n"
    "address = \"127.0.0.1:9007\"\n"
    "protocol = \"tcp-echo\"\n";

std::string canonical(const std::string& path) {
  char buf[PATH_MAX];
  return realpath(path.c_str(), buf) ? std::string(buf) : std::string();
}

// The loaded values of declared keys (ListenerConfig::keys).
std::string root_of(const ListenerConfig& l) {
  const KeyData* v = l.key("root");
  return v ? std::get<std::string>(*v) : std::string();
}
std::int64_t int_key(const ListenerConfig& l, std::string_view key) { return std::get<std::int64_t>(*l.key(key)); }
double seconds_key(const ListenerConfig& l, std::string_view key) { return std::get<double>(*l.key(key)); }

std::string current_directory() {
  char buf[PATH_MAX];
  return getcwd(buf, sizeof buf) ? std::string(buf) : std::string();
}

int expected_auto_workers() {
  const long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : (n > 1024 ? 1024 : static_cast<int>(n));
}

// Each test gets a fresh directory holding the config file and an "html" root.
class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/preforkd-config-test.XXXXXX";
    ASSERT_NE(mkdtemp(templ), nullptr);
    // Canonical, so that expected roots compare equal to realpath() results
    // even where /tmp is a symlink.
    dir_ = canonical(templ);
    ASSERT_FALSE(dir_.empty());
    source_ = dir_ + "/preforkd.toml";
    fs::create_directory(dir_ + "/html");
  }

  void TearDown() override {
    // A test may have taken permissions away; give them back so removal works.
    std::error_code ec;
    fs::permissions(dir_ + "/html", fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(dir_, ec);
  }

  void write_file(const std::string& path, std::string_view text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
    ASSERT_TRUE(out.good()) << path;
  }

  Config parse(std::string_view text) { return parse_config(text, source_); }

  // The ConfigError message with the source path prefix removed, or a marker when
  // nothing was thrown, so that each expectation reads as "LINE:COL: KEY: message".
  std::string error(std::string_view text) {
    try {
      parse_config(text, source_);
    } catch (const ConfigError& e) {
      const std::string what = e.what();
      const std::string prefix = source_ + ":";
      if (what.compare(0, prefix.size(), prefix) != 0) return "unexpected prefix: " + what;
      return what.substr(prefix.size());
    }
    return "(no error)";
  }

  std::string dir_;
  std::string source_;
};

TEST_F(ConfigTest, LoadsAGoodFile) {
  write_file(source_,
             "workers = 4\n"
             "pid_file = \"run/preforkd.pid\"\n"
             "graceful_timeout = 2.5\n"
             "\n"
             "[log]\n"
             "level = \"warn\"\n"
             "error_log = \"logs/error.log\"\n"
             "\n"
             "[[listen]]\n"
             "name = \"web\"\n"
             "address = \"127.0.0.1:8080\"\n"
             "protocol = \"http\"\n"
             "backlog = 128\n"
             "root = \"html\"\n"
             "\n"
             "[[listen]]\n"
             "address = \"[::1]:9007\"\n"
             "protocol = \"tcp-echo\"\n"
             "\n"
             "[[listen]]\n"
             "address = \"[::1]:9007\"\n"
             "protocol = \"udp-echo\"\n"
             "backlog = 5\n");
  const Config c = load_config_file(source_);
  EXPECT_EQ(c.source_path, source_);
  EXPECT_EQ(c.workers, 4);
  EXPECT_EQ(c.pid_file, dir_ + "/run/preforkd.pid");
  EXPECT_DOUBLE_EQ(c.graceful_timeout_s, 2.5);
  EXPECT_EQ(c.log.level, LogLevel::warn);
  EXPECT_EQ(c.log.error_log, dir_ + "/logs/error.log");
  ASSERT_EQ(c.listeners.size(), 3u);

  EXPECT_EQ(c.listeners[0].name, "web");
  EXPECT_EQ(c.listeners[0].address.to_string(), "127.0.0.1:8080");
  EXPECT_EQ(c.listeners[0].protocol.name, "http");
  EXPECT_EQ(c.listeners[0].backlog, 128);
  EXPECT_EQ(root_of(c.listeners[0]), dir_ + "/html");

  EXPECT_EQ(c.listeners[1].name, "listen#2");
  EXPECT_EQ(c.listeners[1].address.to_string(), "[::1]:9007");
  EXPECT_EQ(c.listeners[1].protocol.name, "tcp-echo");
  EXPECT_EQ(c.listeners[1].backlog, 511);
  EXPECT_EQ(root_of(c.listeners[1]), "");

  EXPECT_EQ(c.listeners[2].name, "listen#3");
  EXPECT_EQ(c.listeners[2].protocol.name, "udp-echo");
  EXPECT_EQ(c.listeners[2].backlog, 5);
}

TEST_F(ConfigTest, AppliesDefaults) {
  const Config c = parse(kEcho);
  EXPECT_EQ(c.workers, 1);
  EXPECT_EQ(c.pid_file, "/run/preforkd.pid");
  EXPECT_DOUBLE_EQ(c.graceful_timeout_s, 30.0);
  EXPECT_EQ(c.log.level, LogLevel::info);
  EXPECT_EQ(c.log.error_log, "stderr");
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].name, "listen#1");
  EXPECT_EQ(c.listeners[0].backlog, 511);
}

TEST_F(ConfigTest, AutoWorkersIsTheOnlineCpuCount) {
  const Config c = parse("workers = \"auto\"\n" + std::string(kEcho));
  EXPECT_EQ(c.workers, expected_auto_workers());
  EXPECT_GE(c.workers, 1);
}

TEST_F(ConfigTest, WorkerCpuAffinityIsAutoOrOff) {
  EXPECT_FALSE(parse(std::string(kEcho)).worker_cpu_affinity);
  EXPECT_TRUE(parse("worker_cpu_affinity = \"auto\"\n" + std::string(kEcho)).worker_cpu_affinity);
  EXPECT_FALSE(parse("worker_cpu_affinity = \"off\"\n" + std::string(kEcho)).worker_cpu_affinity);
  EXPECT_EQ(error("worker_cpu_affinity = \"0101\"\n" + std::string(kEcho)),
            "1:23: worker_cpu_affinity: unknown value \"0101\" (expected \"auto\" or \"off\")");
  EXPECT_EQ(error("worker_cpu_affinity = true\n" + std::string(kEcho)), "1:23: worker_cpu_affinity: expected string");
}

TEST_F(ConfigTest, AcceptsBoundaryValues) {
  EXPECT_EQ(parse("workers = 1024\n" + std::string(kEcho)).workers, 1024);
  EXPECT_DOUBLE_EQ(parse("graceful_timeout = 3600\n" + std::string(kEcho)).graceful_timeout_s,
                   3600.0);
  EXPECT_DOUBLE_EQ(parse("graceful_timeout = 0.001\n" + std::string(kEcho)).graceful_timeout_s,
                   0.001);
  EXPECT_EQ(parse(std::string(kEcho) + "backlog = 65535\n").listeners[0].backlog, 65535);
  EXPECT_EQ(parse(std::string(kEcho) + "backlog = 1\n").listeners[0].backlog, 1);
}

TEST_F(ConfigTest, ReuseportDefaultsToTrueAndCanBeTurnedOff) {
  EXPECT_TRUE(parse(std::string(kEcho)).listeners[0].reuseport);
  EXPECT_FALSE(parse(std::string(kEcho) + "reuseport = false\n").listeners[0].reuseport);
  EXPECT_EQ(error(std::string(kEcho) + "reuseport = 1\n"), "4:13: listen[1].reuseport: expected true or false");
}

TEST_F(ConfigTest, ResolvesRelativeRootAgainstTheConfigDirectory) {
  fs::create_directories(dir_ + "/site/docs");
  const Config c = parse(
      "[[listen]]\n"
      "address = \"127.0.0.1:8080\"\n"
      "protocol = \"http\"\n"
      "root = \"./site/../site/docs/\"\n");
  EXPECT_EQ(root_of(c.listeners[0]), dir_ + "/site/docs");
}

TEST_F(ConfigTest, StoresTheRootsRealPath) {
  fs::create_directory_symlink(dir_ + "/html", dir_ + "/current");
  const Config c = parse(
      "[[listen]]\n"
      "address = \"127.0.0.1:8080\"\n"
      "protocol = \"http\"\n"
      "root = \"current\"\n");
  EXPECT_EQ(root_of(c.listeners[0]), dir_ + "/html");
}

TEST_F(ConfigTest, KeepsAbsolutePathsAsWritten) {
  const Config c = parse("pid_file = \"/var/run/x.pid\"\n[log]\nerror_log = \"/var/log/e.log\"\n" +
                         std::string(kEcho) + "[[listen]]\naddress = \"127.0.0.1:80\"\n" +
                         "protocol = \"http\"\nroot = \"" + dir_ + "/html\"\n");
  EXPECT_EQ(c.pid_file, "/var/run/x.pid");
  EXPECT_EQ(c.log.error_log, "/var/log/e.log");
  EXPECT_EQ(root_of(c.listeners[1]), dir_ + "/html");
}

TEST_F(ConfigTest, RelativeSourcePathResolvesAgainstTheCurrentDirectory) {
  const std::string cwd = current_directory();
  ASSERT_FALSE(cwd.empty());
  const std::string text = "pid_file = \"p.pid\"\n[log]\nerror_log = \"e.log\"\n" +
                           std::string(kEcho);
  const Config bare = parse_config(text, "preforkd.toml");
  EXPECT_EQ(bare.pid_file, (cwd == "/" ? "" : cwd) + "/p.pid");
  EXPECT_EQ(bare.log.error_log, (cwd == "/" ? "" : cwd) + "/e.log");
  const Config nested = parse_config(text, "etc/preforkd.toml");
  EXPECT_EQ(nested.pid_file, (cwd == "/" ? "" : cwd) + "/etc/p.pid");
}

TEST_F(ConfigTest, TcpAndUdpMayShareAnAddress) {
  const Config c = parse(std::string(kEcho) +
                         "[[listen]]\naddress = \"127.0.0.1:9007\"\nprotocol = \"udp-echo\"\n");
  EXPECT_EQ(c.listeners.size(), 2u);
}

TEST_F(ConfigTest, AcceptsInlineListenerTables) {
  const Config c = parse(
      "listen = [ { address = \"127.0.0.1:1\", protocol = \"tcp-echo\" },\n"
      "           { address = \"127.0.0.1:2\", protocol = \"udp-echo\" } ]\n");
  EXPECT_EQ(c.listeners.size(), 2u);
}

// ---- errors: each names FILE:LINE:COL and the dotted key ----

TEST_F(ConfigTest, RejectsWrongTypes) {
  EXPECT_EQ(error("workers = 2.5\n" + std::string(kEcho)),
            "1:11: workers: expected integer or \"auto\"");
  EXPECT_EQ(error("workers = \"many\"\n" + std::string(kEcho)),
            "1:11: workers: expected integer or \"auto\"");
  EXPECT_EQ(error("pid_file = 5\n" + std::string(kEcho)), "1:12: pid_file: expected string");
  EXPECT_EQ(error("graceful_timeout = true\n" + std::string(kEcho)),
            "1:20: graceful_timeout: expected a duration: seconds as a number, or a string such as \"30s\", "
            "\"500ms\", \"2m\", \"1h\"");
  EXPECT_EQ(error("log = 5\n" + std::string(kEcho)), "1:7: log: expected table");
  EXPECT_EQ(error("[log]\nlevel = 3\n" + std::string(kEcho)), "2:9: log.level: expected string");
  EXPECT_EQ(error("[log]\nerror_log = false\n" + std::string(kEcho)),
            "2:13: log.error_log: expected string");
  EXPECT_EQ(error("[[listen]]\naddress = 8080\nprotocol = \"tcp-echo\"\n"),
            "2:11: listen[1].address: expected string");
  EXPECT_EQ(error(std::string(kEcho) + "backlog = \"lots\"\n"),
            "4:11: listen[1].backlog: expected integer");
  EXPECT_EQ(error(std::string(kEcho) + "name = 7\n"), "4:8: listen[1].name: expected string");
  EXPECT_EQ(error("[[listen]]\naddress = \"127.0.0.1:1\"\nprotocol = [\"http\"]\n"),
            "3:12: listen[1].protocol: expected string");
  EXPECT_EQ(error("listen = 1\n"), "1:10: listen: expected array of tables ([[listen]])");
  EXPECT_EQ(error("[listen]\naddress = \"127.0.0.1:1\"\nprotocol = \"tcp-echo\"\n"),
            "1:1: listen: expected array of tables ([[listen]])");
}

TEST_F(ConfigTest, RejectsOutOfRangeValues) {
  EXPECT_EQ(error("workers = 0\n" + std::string(kEcho)),
            "1:11: workers: must be between 1 and 1024");
  EXPECT_EQ(error("workers = 1025\n" + std::string(kEcho)),
            "1:11: workers: must be between 1 and 1024");
  EXPECT_EQ(error("workers = -3\n" + std::string(kEcho)),
            "1:11: workers: must be between 1 and 1024");
  for (const char* bad : {"0", "0.0", "-1", "3600.5", "3601", "nan", "inf"}) {
    EXPECT_EQ(error("graceful_timeout = " + std::string(bad) + "\n" + std::string(kEcho)),
              "1:20: graceful_timeout: must be greater than 0 and at most 3600")
        << bad;
  }
  EXPECT_EQ(error(std::string(kEcho) + "backlog = 0\n"),
            "4:11: listen[1].backlog: must be between 1 and 65535");
  EXPECT_EQ(error(std::string(kEcho) + "backlog = 65536\n"),
            "4:11: listen[1].backlog: must be between 1 and 65535");
  EXPECT_EQ(error("pid_file = \"\"\n" + std::string(kEcho)), "1:12: pid_file: must not be empty");
  EXPECT_EQ(error(std::string(kEcho) + "name = \"\"\n"), "4:8: listen[1].name: must not be empty");
}

TEST_F(ConfigTest, RejectsUnknownTopLevelKey) {
  EXPECT_EQ(error("wrokers = 2\n" + std::string(kEcho)), "1:1: wrokers: unknown key");
  EXPECT_EQ(error(std::string(kEcho) + "[server]\nport = 1\n"), "4:2: server: unknown key");
  // The first one in the file, not the first in alphabetical order.
  EXPECT_EQ(error("zzz = 1\naaa = 2\n" + std::string(kEcho)), "1:1: zzz: unknown key");
}

TEST_F(ConfigTest, RejectsUnknownKeyInListen) {
  EXPECT_EQ(error(std::string(kEcho) + "port = 80\n"), "4:1: listen[1].port: unknown key");
  EXPECT_EQ(error(std::string(kEcho) + "\n" + std::string(kEcho) + "  reuse_port = true\n"),
            "8:3: listen[2].reuse_port: unknown key");
}

TEST_F(ConfigTest, RejectsUnknownKeyInLog) {
  EXPECT_EQ(error("[log]\nlevel = \"info\"\ncolour = true\n" + std::string(kEcho)),
            "3:1: log.colour: unknown key");
  EXPECT_EQ(error("log.format = \"json\"\n" + std::string(kEcho)), "1:5: log.format: unknown key");
}

TEST_F(ConfigTest, RejectsUnknownLogLevel) {
  EXPECT_EQ(error("[log]\nlevel = \"verbose\"\n" + std::string(kEcho)),
            "2:9: log.level: unknown level \"verbose\" "
            "(expected debug, info, notice, warn or error)");
}

TEST_F(ConfigTest, RejectsDuplicateAddress) {
  EXPECT_EQ(error(std::string(kEcho) + "\n" + std::string(kEcho)),
            "6:11: listen[2].address: duplicate address 127.0.0.1:9007 (also used by listen[1])");
  // http and tcp-echo are both TCP; the message shows the canonical form.
  EXPECT_EQ(error("[[listen]]\naddress = \"[::1]:80\"\nprotocol = \"tcp-echo\"\n" +
                  std::string(kEcho) +
                  "[[listen]]\naddress = \"[0::1]:80\"\nprotocol = \"http\"\nroot = \"html\"\n"),
            "8:11: listen[3].address: duplicate address [::1]:80 (also used by listen[1])");
  const std::string udp = "[[listen]]\naddress = \"127.0.0.1:53\"\nprotocol = \"udp-echo\"\n";
  EXPECT_EQ(error(udp + udp),
            "5:11: listen[2].address: duplicate address 127.0.0.1:53 (also used by listen[1])");
}

TEST_F(ConfigTest, RejectsDuplicateName) {
  EXPECT_EQ(error("[[listen]]\nname = \"a\"\naddress = \"127.0.0.1:1\"\nprotocol = \"tcp-echo\"\n"
                  "[[listen]]\nname = \"a\"\naddress = \"127.0.0.1:2\"\nprotocol = \"tcp-echo\"\n"),
            "6:8: listen[2].name: duplicate name \"a\" (also used by listen[1])");
  // An explicit name may not take a default one either.
  EXPECT_EQ(error(std::string(kEcho) +
                  "[[listen]]\nname = \"listen#1\"\naddress = \"127.0.0.1:2\"\n"
                  "protocol = \"tcp-echo\"\n"),
            "5:8: listen[2].name: duplicate name \"listen#1\" (also used by listen[1])");
}

TEST_F(ConfigTest, RejectsUnknownProtocol) {
  EXPECT_EQ(error("[[listen]]\naddress = \"127.0.0.1:25\"\nprotocol = \"smtp\"\n"),
            "3:12: listen[1].protocol: unknown protocol \"smtp\" "
            "(expected http, tcp-echo or udp-echo)");
}

TEST_F(ConfigTest, RejectsMissingAddress) {
  EXPECT_EQ(error(std::string(kEcho) + "\n[[listen]]\nprotocol = \"tcp-echo\"\n"),
            "5:1: listen[2].address: missing required key");
}

TEST_F(ConfigTest, RejectsMissingProtocol) {
  EXPECT_EQ(error("workers = 2\n\n[[listen]]\naddress = \"127.0.0.1:1\"\n"),
            "3:1: listen[1].protocol: missing required key");
}

TEST_F(ConfigTest, RejectsHttpWithoutRoot) {
  EXPECT_EQ(error("[[listen]]\naddress = \"127.0.0.1:80\"\nprotocol = \"http\"\n"),
            "1:1: listen[1].root: missing required key (protocol \"http\" needs it)");
}

TEST_F(ConfigTest, RejectsRootForNonHttp) {
  EXPECT_EQ(error(std::string(kEcho) + "root = \"html\"\n"),
            "4:8: listen[1].root: not allowed for protocol \"tcp-echo\"");
  EXPECT_EQ(error("[[listen]]\naddress = \"127.0.0.1:1\"\nprotocol = \"udp-echo\"\n"
                  "root = \"html\"\n"),
            "4:8: listen[1].root: not allowed for protocol \"udp-echo\"");
}

TEST_F(ConfigTest, RejectsMissingRoot) {
  EXPECT_EQ(
      error("[[listen]]\naddress = \"127.0.0.1:80\"\nprotocol = \"http\"\nroot = \"nope\"\n"),
      "4:8: listen[1].root: " + dir_ + "/nope: No such file or directory");
}

TEST_F(ConfigTest, RejectsRootThatIsAFile) {
  write_file(dir_ + "/file", "x");
  EXPECT_EQ(
      error("[[listen]]\naddress = \"127.0.0.1:80\"\nprotocol = \"http\"\nroot = \"file\"\n"),
      "4:8: listen[1].root: " + dir_ + "/file: not a directory");
}

TEST_F(ConfigTest, RejectsUnreadableRoot) {
  // access() always succeeds for root, so as root the check runs in a child that
  // has dropped to nobody (uid/gid 65534).
  ASSERT_EQ(chmod(dir_.c_str(), 0755), 0);
  ASSERT_EQ(chmod((dir_ + "/html").c_str(), 0300), 0);
  const std::string expected = "4:8: listen[1].root: " + dir_ + "/html: Permission denied";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(99);
    const std::string got =
        error("[[listen]]\naddress = \"127.0.0.1:80\"\nprotocol = \"http\"\nroot = \"html\"\n");
    if (got != expected) std::fprintf(stderr, "got: %s\n", got.c_str());
    _exit(got == expected ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_EQ(chmod((dir_ + "/html").c_str(), 0755), 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "expected: " << expected;
}

TEST_F(ConfigTest, RejectsConfigFilesTooLargeForTheIpcChannel) {
  const std::string path = dir_ + "/huge.toml";
  std::ofstream(path) << "# " << std::string(kMaxConfigBytes, 'x') << "\n";
  try {
    load_config_file(path);
    FAIL() << "a config over kMaxConfigBytes was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("larger than 512 KiB"), std::string::npos) << e.what();
  }
}

TEST_F(ConfigTest, RejectsSyntaxErrors) {
  // Only the position and prefix are pinned: the description is toml++'s wording.
  const std::string e = error("workers = 2\npid_file = \n" + std::string(kEcho));
  EXPECT_EQ(e.substr(0, 14), "2:12: syntax: ") << e;
  EXPECT_NE(e.find("expected value"), std::string::npos) << e;
  const std::string dup = error("workers = 2\nworkers = 3\n" + std::string(kEcho));
  EXPECT_EQ(dup.substr(0, 14), "2:11: syntax: ") << dup;
  EXPECT_NE(dup.find("'workers'"), std::string::npos) << dup;
}

TEST_F(ConfigTest, RejectsBadAddress) {
  EXPECT_EQ(error("[[listen]]\naddress = \"localhost:80\"\nprotocol = \"tcp-echo\"\n"),
            "2:11: listen[1].address: \"localhost:80\": not an IPv4 address "
            "(host names are not accepted)");
  EXPECT_EQ(error("[[listen]]\nprotocol = \"tcp-echo\"\naddress = \"127.0.0.1:0\"\n"),
            "3:11: listen[1].address: \"127.0.0.1:0\": port must be a number from 1 to 65535");
}

TEST_F(ConfigTest, RejectsNoListeners) {
  EXPECT_EQ(error("workers = 2\n"), "1:1: listen: at least one [[listen]] table is required");
  EXPECT_EQ(error(""), "1:1: listen: at least one [[listen]] table is required");
  EXPECT_EQ(error("workers = 2\nlisten = []\n"),
            "2:10: listen: at least one [[listen]] table is required");
}

TEST_F(ConfigTest, ReportsUnreadableFiles) {
  try {
    load_config_file(dir_ + "/missing.toml");
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              dir_ + "/missing.toml: cannot read: No such file or directory");
  }
  try {
    load_config_file(dir_ + "/html");
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), dir_ + "/html: cannot read: Is a directory");
  }
}

TEST_F(ConfigTest, ReadConfigTextReturnsTheWholeFile) {
  std::string big(100000, 'x');
  big += "\nend\n";
  write_file(source_, big);
  EXPECT_EQ(read_config_text(source_), big);
}

TEST(ShippedConfig, DefaultConfigLoads) {
#ifdef PREFORKD_SOURCE_DIR
  const std::string path = std::string(PREFORKD_SOURCE_DIR) + "/conf/preforkd.toml";
  const Config c = load_config_file(path);
  EXPECT_EQ(c.workers, expected_auto_workers());
  EXPECT_EQ(c.pid_file, "/run/preforkd.pid");
  EXPECT_DOUBLE_EQ(c.graceful_timeout_s, 30.0);
  EXPECT_EQ(c.log.level, LogLevel::info);
  EXPECT_EQ(c.log.error_log, "stderr");
  ASSERT_EQ(c.listeners.size(), 3u);
  EXPECT_EQ(c.listeners[0].name, "web");
  EXPECT_EQ(c.listeners[0].protocol.name, "http");
  EXPECT_EQ(c.listeners[0].address.to_string(), "127.0.0.1:8080");
  EXPECT_EQ(c.listeners[0].backlog, 511);
  EXPECT_EQ(root_of(c.listeners[0]), canonical(std::string(PREFORKD_SOURCE_DIR) + "/conf/html"));
  EXPECT_EQ(c.listeners[1].name, "echo");
  EXPECT_EQ(c.listeners[1].protocol.name, "tcp-echo");
  EXPECT_EQ(c.listeners[1].address.to_string(), "127.0.0.1:9007");
  EXPECT_EQ(c.listeners[2].name, "echo-udp");
  EXPECT_EQ(c.listeners[2].protocol.name, "udp-echo");
  EXPECT_EQ(c.listeners[2].address.to_string(), "127.0.0.1:9007");
#else
  GTEST_SKIP() << "PREFORKD_SOURCE_DIR not defined";
#endif
}

// debian/preforkd.toml, the package's /etc/preforkd/preforkd.toml, with its document
// root (which exists once the package is installed) pointed at the test's "html".
TEST_F(ConfigTest, PackagedConfigLoads) {
  std::ifstream in(std::string(PREFORKD_SOURCE_DIR) + "/debian/preforkd.toml");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string installed_root = "\"/usr/share/preforkd/html\"";
  const auto at = text.find(installed_root);
  ASSERT_NE(at, std::string::npos) << "the packaged config serves " << installed_root;
  text.replace(at, installed_root.size(), "\"" + dir_ + "/html\"");
  const Config c = parse(text);
  EXPECT_EQ(c.pid_file, "/run/preforkd.pid");
  EXPECT_EQ(c.run_as.user, "www-data");
  EXPECT_DOUBLE_EQ(c.graceful_timeout_s, 30.0);
  EXPECT_DOUBLE_EQ(c.worker_timeout_s, 30.0);
  EXPECT_EQ(c.log.error_log, "/var/log/preforkd/error.log");
  EXPECT_EQ(c.log.access_log, "/var/log/preforkd/access.log");
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].address.to_string(), "127.0.0.1:8080");
  EXPECT_DOUBLE_EQ(seconds_key(c.listeners[0], "header_timeout"), 10.0);
  EXPECT_DOUBLE_EQ(seconds_key(c.listeners[0], "idle_timeout"), 60.0);
}

TEST(BuiltinProtocols, AreRegisteredWithTheirTransports) {
  const ProtocolRegistry& r = process_registry();
  ASSERT_NE(r.find("http"), nullptr);
  EXPECT_EQ(r.find("http")->transport, Transport::stream);
  EXPECT_EQ(r.find("tcp-echo")->transport, Transport::stream);
  EXPECT_EQ(r.find("udp-echo")->transport, Transport::datagram);
  EXPECT_EQ(r.find("smtp"), nullptr);
  EXPECT_EQ(r.expected_names(), "http, tcp-echo or udp-echo");
}

TEST(ParseLogLevel, AcceptsTheFiveLevels) {
  LogLevel level = LogLevel::error;
  ASSERT_TRUE(parse_log_level("debug", &level));
  EXPECT_EQ(level, LogLevel::debug);
  ASSERT_TRUE(parse_log_level("info", &level));
  EXPECT_EQ(level, LogLevel::info);
  ASSERT_TRUE(parse_log_level("notice", &level));
  EXPECT_EQ(level, LogLevel::notice);
  ASSERT_TRUE(parse_log_level("warn", &level));
  EXPECT_EQ(level, LogLevel::warn);
  ASSERT_TRUE(parse_log_level("error", &level));
  EXPECT_EQ(level, LogLevel::error);
}

TEST(ParseLogLevel, RejectsAnythingElse) {
  LogLevel level = LogLevel::notice;
  for (const char* bad : {"", "INFO", "warning", "err", "info ", "trace"}) {
    EXPECT_FALSE(parse_log_level(bad, &level)) << bad;
  }
  EXPECT_EQ(level, LogLevel::notice);
}


// --- Limits against hostile clients (common/limits.hpp) ---------------------------

constexpr std::string_view kHttp =
    "[[listen]]\n"
    "address = \"127.0.0.1:8080\"\n"
    "protocol = \"http\"\n"
    "root = \"html\"\n";
constexpr std::string_view kUdp =
    "[[listen]]\n"
    "address = \"127.0.0.1:9007\"\n"
    "protocol = \"udp-echo\"\n";

TEST_F(ConfigTest, LimitsHaveNginxLikeDefaults) {
  const Config c = parse(kHttp);
  EXPECT_EQ(c.max_connections, 10000);
  const ListenerConfig& l = c.listeners[0];
  EXPECT_EQ(int_key(l, "max_request_line"), 8192);
  EXPECT_EQ(int_key(l, "max_header_size"), 16384);
  EXPECT_EQ(int_key(l, "max_body_size"), 1048576);
  EXPECT_DOUBLE_EQ(seconds_key(l, "header_timeout"), 10.0);
  EXPECT_DOUBLE_EQ(seconds_key(l, "idle_timeout"), 60.0);
  EXPECT_DOUBLE_EQ(l.send_timeout_s, 60.0);
  EXPECT_DOUBLE_EQ(seconds_key(l, "retire_idle_grace"), 1.0);
  EXPECT_EQ(parse(kUdp).listeners[0].max_datagram_size, 65536u);
}

TEST_F(ConfigTest, LoadsEveryLimit) {
  const Config c = parse("max_connections = 5\n" + std::string(kHttp) +
                         "max_request_line = 100\nmax_header_size = 1024\nmax_body_size = 0\n"
                         "header_timeout = 1.5\nidle_timeout = 2\nsend_timeout = 3\nretire_idle_grace = 0.25\n" +
                         std::string(kEcho) + "idle_timeout = 4\nsend_timeout = 0.5\n" +
                         "[[listen]]\naddress = \"127.0.0.1:9007\"\nprotocol = \"udp-echo\"\n"
                         "max_datagram_size = 512\n");
  EXPECT_EQ(c.max_connections, 5);
  const ListenerConfig& h = c.listeners[0];
  EXPECT_EQ(int_key(h, "max_request_line"), 100);
  EXPECT_EQ(int_key(h, "max_header_size"), 1024);
  EXPECT_EQ(int_key(h, "max_body_size"), 0);
  EXPECT_DOUBLE_EQ(seconds_key(h, "header_timeout"), 1.5);
  EXPECT_DOUBLE_EQ(seconds_key(h, "idle_timeout"), 2.0);
  EXPECT_DOUBLE_EQ(h.send_timeout_s, 3.0);
  EXPECT_DOUBLE_EQ(seconds_key(h, "retire_idle_grace"), 0.25);
  EXPECT_DOUBLE_EQ(seconds_key(c.listeners[1], "idle_timeout"), 4.0);
  EXPECT_DOUBLE_EQ(c.listeners[1].send_timeout_s, 0.5);
  EXPECT_EQ(c.listeners[2].max_datagram_size, 512u);
}

TEST_F(ConfigTest, RejectsLimitsOutOfRange) {
  EXPECT_EQ(error("max_connections = 0\n" + std::string(kEcho)),
            "1:19: max_connections: must be between 1 and 1000000");
  EXPECT_EQ(error("max_connections = \"many\"\n" + std::string(kEcho)),
            "1:19: max_connections: expected integer");
  EXPECT_EQ(error(std::string(kHttp) + "max_request_line = 63\n"),
            "5:20: listen[1].max_request_line: must be between 64 and 65536");
  // Above http-parser's own 80 KiB limit ours could never apply.
  EXPECT_EQ(error(std::string(kHttp) + "max_header_size = 65537\n"),
            "5:19: listen[1].max_header_size: must be between 256 and 65536");
  EXPECT_EQ(error(std::string(kHttp) + "max_body_size = -1\n"),
            "5:17: listen[1].max_body_size: must be between 0 and 1099511627776");
  EXPECT_EQ(error(std::string(kHttp) + "header_timeout = 0\n"),
            "5:18: listen[1].header_timeout: must be greater than 0 and at most 3600");
  EXPECT_EQ(error(std::string(kEcho) + "idle_timeout = \"61m\"\n"),
            "4:16: listen[1].idle_timeout: \"61m\": must be greater than 0 and at most 3600 seconds (1h)");
  EXPECT_EQ(error(std::string(kHttp) + "retire_idle_grace = 0\n"),
            "5:21: listen[1].retire_idle_grace: must be greater than 0 and at most 3600");
  EXPECT_EQ(error(std::string(kEcho) + "send_timeout = 3601\n"),
            "4:16: listen[1].send_timeout: must be greater than 0 and at most 3600");
  EXPECT_EQ(error(std::string(kUdp) + "max_datagram_size = 65537\n"),
            "4:21: listen[1].max_datagram_size: must be between 1 and 65536");
}

// --- Durations: a number of seconds, or a string with units (common/duration.hpp) ---

TEST_F(ConfigTest, EveryDurationKeyTakesUnits) {
  const Config c = parse(
      "graceful_timeout = \"2m\"\nworker_timeout = \"1m 30s\"\n" + std::string(kHttp) +
      "header_timeout = \"500ms\"\nidle_timeout = \"1h\"\nsend_timeout = \"1.5s\"\n" + std::string(kEcho) +
      "idle_timeout = \"1m30s\"\nsend_timeout = \"45s\"\n");
  EXPECT_DOUBLE_EQ(c.graceful_timeout_s, 120.0);
  EXPECT_DOUBLE_EQ(c.worker_timeout_s, 90.0);
  const ListenerConfig& h = c.listeners[0];
  EXPECT_DOUBLE_EQ(seconds_key(h, "header_timeout"), 0.5);
  EXPECT_DOUBLE_EQ(seconds_key(h, "idle_timeout"), 3600.0);
  EXPECT_DOUBLE_EQ(h.send_timeout_s, 1.5);
  EXPECT_DOUBLE_EQ(seconds_key(c.listeners[1], "idle_timeout"), 90.0);
  EXPECT_DOUBLE_EQ(c.listeners[1].send_timeout_s, 45.0);
}

TEST_F(ConfigTest, DurationForms) {
  const std::pair<const char*, double> cases[] = {
      {"30", 30.0},          {"2.5", 2.5},           {"\"30s\"", 30.0},    {"\"500ms\"", 0.5},
      {"\"1ms\"", 0.001},    {"\"2m\"", 120.0},      {"\"1h\"", 3600.0},   {"\"0.5m\"", 30.0},
      {"\"1.25s\"", 1.25},   {"\"1m30s\"", 90.0},    {"\"1m  30s\"", 90.0}, {"\"1m30s250ms\"", 90.25},
      {"\"0h1m\"", 60.0},    {"\"007s\"", 7.0},      {"\"59m59s999ms\"", 3599.999},
  };
  for (const auto& [text, seconds] : cases) {
    EXPECT_DOUBLE_EQ(parse("graceful_timeout = " + std::string(text) + "\n" + std::string(kEcho)).graceful_timeout_s,
                     seconds)
        << text;
  }
}

TEST_F(ConfigTest, RejectsBadDurationsAtTheirLineAndColumn) {
  const std::pair<std::string, std::string> cases[] = {
      {"\"\"", "empty duration (expected e.g. \"30s\", \"500ms\", \"2m\", \"1h\")"},
      {"\"-5s\"", "negative durations are not allowed"},
      {"\"1m-5s\"", "negative durations are not allowed"},
      {"\"5x\"", "unknown unit \"x\" (expected ms, s, m or h)"},
      {"\"30S\"", "unknown unit \"S\" (expected ms, s, m or h)"},
      {"\"2d\"", "unknown unit \"d\" (expected ms, s, m or h)"},
      {"\"1sec\"", "unknown unit \"sec\" (expected ms, s, m or h)"},
      {"\"30\"", "missing unit after 30 (expected ms, s, m or h; a plain number of seconds is written without quotes)"},
      {"\"1 s\"", "missing unit after 1 (expected ms, s, m or h; a plain number of seconds is written without quotes)"},
      {"\"s\"", "expected a number at \"s\""},
      {"\".5s\"", "expected a number at \".5s\""},
      {"\" 1s\"", "expected a number at \" 1s\""},
      {"\"nan\"", "expected a number at \"nan\""},
      {"\"+1s\"", "expected a number at \"+1s\""},
      {"\"1m,30s\"", "expected a number at \",30s\""},
      {"\"1s \"", "trailing space"},
      {"\"30s1m\"", "units must go from largest to smallest, each at most once (e.g. \"1m30s\")"},
      {"\"1s1s\"", "units must go from largest to smallest, each at most once (e.g. \"1m30s\")"},
      {"\"1" + std::string(400, '0') + "h\"", "number too large"},
  };
  for (const auto& [text, message] : cases) {
    EXPECT_EQ(error("graceful_timeout = " + std::string(text) + "\n" + std::string(kEcho)),
              "1:20: graceful_timeout: " + text + ": " + message)
        << text;
  }
  // Parsed, but out of range (a huge number overflows to inf, which is out of range too).
  for (const std::string& text : std::vector<std::string>{"0s", "0ms", "0m0s", "61m", "1h1ms", "2h",
                                                          "1" + std::string(306, '0') + "h"}) {
    EXPECT_EQ(error("graceful_timeout = \"" + text + "\"\n" + std::string(kEcho)),
              "1:20: graceful_timeout: \"" + text + "\": must be greater than 0 and at most 3600 seconds (1h)")
        << text;
  }
  // Each duration key reports its own position.
  EXPECT_EQ(error("workers = 1\nworker_timeout = \"5y\"\n" + std::string(kEcho)),
            "2:18: worker_timeout: \"5y\": unknown unit \"y\" (expected ms, s, m or h)");
  EXPECT_EQ(error(std::string(kHttp) + "header_timeout = \"-1s\"\n"),
            "5:18: listen[1].header_timeout: \"-1s\": negative durations are not allowed");
  EXPECT_EQ(error(std::string(kEcho) + "idle_timeout = \"\"\n"),
            "4:16: listen[1].idle_timeout: \"\": empty duration (expected e.g. \"30s\", \"500ms\", \"2m\", \"1h\")");
  EXPECT_EQ(error(std::string(kEcho) + "send_timeout = \"10 s\"\n"),
            "4:16: listen[1].send_timeout: \"10 s\": missing unit after 10 (expected ms, s, m or h; a plain "
            "number of seconds is written without quotes)");
  EXPECT_EQ(error(std::string(kEcho) + "send_timeout = [1]\n"),
            "4:16: listen[1].send_timeout: expected a duration: seconds as a number, or a string such as \"30s\", "
            "\"500ms\", \"2m\", \"1h\"");
}

TEST_F(ConfigTest, RejectsLimitsOnProtocolsTheyDoNotApplyTo) {
  EXPECT_EQ(error(std::string(kEcho) + "max_body_size = 10\n"),
            "4:17: listen[1].max_body_size: not allowed for protocol \"tcp-echo\"");
  EXPECT_EQ(error(std::string(kEcho) + "header_timeout = 1\n"),
            "4:18: listen[1].header_timeout: not allowed for protocol \"tcp-echo\"");
  // tcp-echo has no request boundary at which a retiring worker could close.
  EXPECT_EQ(error(std::string(kEcho) + "retire_idle_grace = 1\n"),
            "4:21: listen[1].retire_idle_grace: not allowed for protocol \"tcp-echo\"");
  EXPECT_EQ(error(std::string(kUdp) + "idle_timeout = 1\n"),
            "4:16: listen[1].idle_timeout: not allowed for protocol \"udp-echo\"");
  EXPECT_EQ(error(std::string(kHttp) + "max_datagram_size = 512\n"),
            "5:21: listen[1].max_datagram_size: not allowed for protocol \"http\"");
}

// --- Operability keys: user, group, worker_rlimit_nofile, max_requests, access_log ---

TEST_F(ConfigTest, OperabilityKeysDefaultToOff) {
  const Config c = parse(kEcho);
  EXPECT_FALSE(c.run_as.set());
  EXPECT_EQ(c.worker_rlimit_nofile, 0u);
  EXPECT_EQ(c.max_requests, 0u);
  EXPECT_EQ(c.max_requests_jitter, 0u);
  EXPECT_EQ(c.log.access_log, "");
}

TEST_F(ConfigTest, ResolvesUserAndGroupToIds) {
  // root (0:0) and nobody/nogroup exist on every Debian system.
  Config c = parse("user = \"root\"\n" + std::string(kEcho));
  EXPECT_TRUE(c.run_as.set());
  EXPECT_EQ(c.run_as.user, "root");
  EXPECT_EQ(c.run_as.uid, 0u);
  EXPECT_EQ(c.run_as.gid, 0u);
  c = parse("user = \"nobody\"\ngroup = \"nogroup\"\n" + std::string(kEcho));
  EXPECT_EQ(c.run_as.uid, 65534u);
  EXPECT_EQ(c.run_as.gid, 65534u);
  EXPECT_EQ(c.run_as.group, "nogroup");
  // Without `group`: the user's primary group.
  c = parse("user = \"nobody\"\n" + std::string(kEcho));
  EXPECT_EQ(c.run_as.gid, 65534u);
  c = parse("user = \"nobody\"\ngroup = \"root\"\n" + std::string(kEcho));
  EXPECT_EQ(c.run_as.uid, 65534u);
  EXPECT_EQ(c.run_as.gid, 0u);
}

TEST_F(ConfigTest, RejectsBadUserAndGroup) {
  EXPECT_EQ(error("user = \"no-such-user-xyz\"\n" + std::string(kEcho)),
            "1:8: user: unknown user \"no-such-user-xyz\"");
  EXPECT_EQ(error("user = \"nobody\"\ngroup = \"no-such-group-xyz\"\n" + std::string(kEcho)),
            "2:9: group: unknown group \"no-such-group-xyz\"");
  EXPECT_EQ(error("group = \"nogroup\"\n" + std::string(kEcho)),
            "1:9: group: needs user (a group alone does not drop privileges)");
  EXPECT_EQ(error("user = 0\n" + std::string(kEcho)), "1:8: user: expected string");
  EXPECT_EQ(error("user = \"\"\n" + std::string(kEcho)), "1:8: user: must not be empty");
}

TEST_F(ConfigTest, ReadsWorkerRlimitNofile) {
  EXPECT_EQ(parse("worker_rlimit_nofile = 4096\n" + std::string(kEcho)).worker_rlimit_nofile, 4096u);
  EXPECT_EQ(parse("worker_rlimit_nofile = 1\n" + std::string(kEcho)).worker_rlimit_nofile, 1u);
  EXPECT_EQ(error("worker_rlimit_nofile = 0\n" + std::string(kEcho)),
            "1:24: worker_rlimit_nofile: must be between 1 and 1073741824");
  EXPECT_EQ(error("worker_rlimit_nofile = \"lots\"\n" + std::string(kEcho)),
            "1:24: worker_rlimit_nofile: expected integer");
}

TEST_F(ConfigTest, ReadsMaxRequestsAndJitter) {
  Config c = parse("max_requests = 1000\nmax_requests_jitter = 50\n" + std::string(kEcho));
  EXPECT_EQ(c.max_requests, 1000u);
  EXPECT_EQ(c.max_requests_jitter, 50u);
  EXPECT_EQ(parse("max_requests = 0\n" + std::string(kEcho)).max_requests, 0u);
  EXPECT_EQ(error("max_requests = -1\n" + std::string(kEcho)),
            "1:16: max_requests: must be between 0 and 1000000000000");
  EXPECT_EQ(error("max_requests = 1.5\n" + std::string(kEcho)), "1:16: max_requests: expected integer");
  EXPECT_EQ(error("max_requests = 10\nmax_requests_jitter = -1\n" + std::string(kEcho)),
            "2:23: max_requests_jitter: must be between 0 and 1000000000000");
  EXPECT_EQ(error("max_requests_jitter = 5\n" + std::string(kEcho)),
            "1:23: max_requests_jitter: needs max_requests > 0 (jitter alone recycles nothing)");
}

TEST_F(ConfigTest, ResolvesAccessLogAgainstTheConfigDirectory) {
  EXPECT_EQ(parse("[log]\naccess_log = \"logs/access.log\"\n" + std::string(kEcho)).log.access_log,
            dir_ + "/logs/access.log");
  EXPECT_EQ(parse("[log]\naccess_log = \"/var/log/a.log\"\n" + std::string(kEcho)).log.access_log,
            "/var/log/a.log");
  EXPECT_EQ(error("[log]\naccess_log = \"\"\n" + std::string(kEcho)), "2:14: log.access_log: must not be empty");
  EXPECT_EQ(error("[log]\naccess_log = true\n" + std::string(kEcho)), "2:14: log.access_log: expected string");
}

}  // namespace
}  // namespace preforkd
