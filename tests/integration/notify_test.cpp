// systemd's notify protocol, with the test in systemd's place: a real AF_UNIX
// datagram socket named by NOTIFY_SOCKET, SO_PASSCRED to see who sent each
// message, and the exact sequence the master sends across start, reloads (good and
// failed), a binary upgrade and stop.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <regex>

#include "tests/integration/harness.hpp"

using namespace itest;

namespace {

struct Notification {
  std::string text;
  pid_t sender = 0;
};

class NotifySocket {
 public:
  // name: a path, or "@name" for the abstract namespace.
  explicit NotifySocket(const std::string& name) : name_(name) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int on = 1;
    setsockopt(fd_, SOL_SOCKET, SO_PASSCRED, &on, sizeof on);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, name.data(), name.size());
    if (name[0] == '@') address.sun_path[0] = '\0';
    bound_ = bind(fd_, reinterpret_cast<sockaddr*>(&address),
                  static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size())) == 0;
  }
  ~NotifySocket() {
    close(fd_);
    if (name_[0] == '/') unlink(name_.c_str());
  }
  bool bound() const { return bound_; }

  std::optional<Notification> next(Millis timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(timeout.count())) != 1) return std::nullopt;
    char data[4096];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
    iovec iov{data, sizeof data};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = recvmsg(fd_, &msg, 0);
    if (n < 0) return std::nullopt;
    Notification out{std::string(data, static_cast<std::size_t>(n)), 0};
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
        ucred cred{};
        std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
        out.sender = cred.pid;
      }
    }
    return out;
  }

 private:
  std::string name_;
  int fd_ = -1;
  bool bound_ = false;
};

unsigned long long monotonic_usec() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<unsigned long long>(ts.tv_sec) * 1000000ull + static_cast<unsigned long long>(ts.tv_nsec) / 1000;
}

// Starts the server with NOTIFY_SOCKET set for it (and only for it).
bool start_notified(Preforkd& server, const std::string& socket_name, std::string* why) {
  setenv("NOTIFY_SOCKET", socket_name.c_str(), 1);
  bool ok = server.start(10s, why);
  unsetenv("NOTIFY_SOCKET");
  return ok;
}

std::string printable(const std::string& text) {
  std::string out;
  for (char c : text) out += c == '\n' ? std::string("\\n") : std::string(1, c);
  return out;
}

#define EXPECT_NOTIFICATION(socket, expected_text, expected_sender, log)                      \
  do {                                                                                         \
    auto got_ = (socket).next(5s);                                                             \
    ASSERT_TRUE(got_) << "no notification; expected " << printable(expected_text) << "\n" << (log); \
    std::cout << "[ notify   ] pid " << got_->sender << ": " << printable(got_->text) << "\n";  \
    EXPECT_EQ(got_->text, expected_text);                                                      \
    EXPECT_EQ(got_->sender, expected_sender);                                                  \
  } while (0)

TEST(Notify, SequenceAcrossStartReloadFailedReloadAndQuit) {
  Preforkd server({.workers = 2});
  NotifySocket systemd(server.dir() + "/notify.sock");
  ASSERT_TRUE(systemd.bound()) << strerror(errno);
  std::string why;
  ASSERT_TRUE(start_notified(server, server.dir() + "/notify.sock", &why)) << why;
  pid_t master = server.master_pid();
  EXPECT_NOTIFICATION(systemd, "READY=1\nSTATUS=generation 1 serving with 2 worker(s)\nMAINPID=" + std::to_string(master) + "\n",
                      master, server.log());
  // Only the master speaks for the service.
  for (pid_t w : server.worker_pids()) {
    std::string env = read_file("/proc/" + std::to_string(w) + "/environ");
    EXPECT_FALSE(env.empty());
    EXPECT_EQ(env.find("NOTIFY_SOCKET="), std::string::npos) << "worker " << w << " inherited NOTIFY_SOCKET";
  }

  unsigned long long before = monotonic_usec();
  ASSERT_TRUE(server.signal(SIGHUP));
  auto reloading = systemd.next(5s);
  ASSERT_TRUE(reloading) << server.log();
  std::cout << "[ notify   ] pid " << reloading->sender << ": " << printable(reloading->text) << "\n";
  std::smatch match;
  ASSERT_TRUE(std::regex_match(reloading->text, match,
                               std::regex("RELOADING=1\nMONOTONIC_USEC=(\\d+)\nSTATUS=reloading; generation 1 serving "
                                          "with 2 worker\\(s\\)\n")))
      << printable(reloading->text);
  unsigned long long stamp = std::stoull(match[1]);
  EXPECT_GE(stamp, before);
  EXPECT_LE(stamp, monotonic_usec());
  EXPECT_NOTIFICATION(systemd, "READY=1\nSTATUS=reloaded; generation 2 serving with 2 worker(s)\n", master, server.log());
  EXPECT_TRUE(server.log().find("retiring generation 1") != std::string::npos) << "READY=1 only once generation 2 serves";

  std::string good = read_file(server.config_path());
  write_file(server.config_path(), good + "\nnot toml at all\n");
  ASSERT_TRUE(server.signal(SIGHUP));
  reloading = systemd.next(5s);
  ASSERT_TRUE(reloading) << server.log();
  std::cout << "[ notify   ] pid " << reloading->sender << ": " << printable(reloading->text) << "\n";
  EXPECT_EQ(reloading->text.rfind("RELOADING=1\nMONOTONIC_USEC=", 0), 0u) << printable(reloading->text);
  EXPECT_NOTIFICATION(systemd, "READY=1\nSTATUS=reload failed (see the error log); generation 2 serving with 2 worker(s)\n",
                      master, server.log());
  write_file(server.config_path(), good);

  ASSERT_TRUE(server.signal(SIGQUIT));
  EXPECT_NOTIFICATION(systemd, "STOPPING=1\nSTATUS=stopping\n", master, server.log());
  EXPECT_EQ(server.wait_exit(15s), std::optional<int>(0)) << server.log();
  auto extra = systemd.next(200ms);
  EXPECT_FALSE(extra) << "unexpected after exit: " << printable(extra->text);
}

TEST(Notify, AbstractSocketNameAndFastStop) {
  Preforkd server({.workers = 1});
  std::string name = "@preforkd-itest-" + std::to_string(getpid()) + "-" + std::to_string(free_port());
  NotifySocket systemd(name);
  ASSERT_TRUE(systemd.bound()) << strerror(errno);
  std::string why;
  ASSERT_TRUE(start_notified(server, name, &why)) << why;
  pid_t master = server.master_pid();
  EXPECT_NOTIFICATION(systemd, "READY=1\nSTATUS=generation 1 serving with 1 worker(s)\nMAINPID=" + std::to_string(master) + "\n",
                      master, server.log());
  ASSERT_TRUE(server.signal(SIGTERM));
  EXPECT_NOTIFICATION(systemd, "STOPPING=1\nSTATUS=stopping\n", master, server.log());
  EXPECT_EQ(server.wait_exit(10s), std::optional<int>(0)) << server.log();
}

// USR2: the new master announces itself as the main process (MAINPID=) once it
// serves, before it tells the old one to go; the old master then leaves quietly,
// because STOPPING=1 from it would tell systemd the service is going down.
TEST(Notify, BinaryUpgradeMovesMainPidWithoutStopping) {
  Preforkd server({.workers = 2});
  NotifySocket systemd(server.dir() + "/notify.sock");
  ASSERT_TRUE(systemd.bound()) << strerror(errno);
  std::string why;
  ASSERT_TRUE(start_notified(server, server.dir() + "/notify.sock", &why)) << why;
  pid_t old_master = server.master_pid();
  auto first = systemd.next(5s);
  ASSERT_TRUE(first) << server.log();
  ASSERT_TRUE(server.signal(SIGUSR2));
  auto handover = systemd.next(10s);
  ASSERT_TRUE(handover) << server.log();
  std::cout << "[ notify   ] pid " << handover->sender << ": " << printable(handover->text) << "\n";
  pid_t new_master = handover->sender;
  EXPECT_NE(new_master, old_master);
  EXPECT_EQ(handover->text,
            "READY=1\nSTATUS=generation 1 serving with 2 worker(s)\nMAINPID=" + std::to_string(new_master) + "\n");
  EXPECT_EQ(server.wait_exit(15s), std::optional<int>(0)) << server.log();
  auto extra = systemd.next(300ms);
  EXPECT_FALSE(extra) << "the old master sent " << printable(extra->text);
  ASSERT_EQ(kill(new_master, SIGQUIT), 0);
  EXPECT_NOTIFICATION(systemd, "STOPPING=1\nSTATUS=stopping\n", new_master, server.log());
  EXPECT_TRUE(wait_gone(new_master, 15s)) << server.log();
}

// upgrade_handover = "manual", rolled back: the new master is the main process
// once it serves; the parked old master says nothing (its rollback generation
// either); the new master, asked to stop while the old one lives, hands MAINPID
// back before it goes, or systemd would take its exit for the service's end.
TEST(Notify, ManualRollbackHandsMainPidBackToTheOldMaster) {
  Preforkd server({.workers = 2, .top_config = "upgrade_handover = \"manual\""});
  NotifySocket systemd(server.dir() + "/notify.sock");
  ASSERT_TRUE(systemd.bound()) << strerror(errno);
  std::string why;
  ASSERT_TRUE(start_notified(server, server.dir() + "/notify.sock", &why)) << why;
  pid_t old_master = server.master_pid();
  ASSERT_TRUE(systemd.next(5s)) << server.log();
  ASSERT_TRUE(server.signal(SIGUSR2));
  auto handover = systemd.next(10s);
  ASSERT_TRUE(handover) << server.log();
  pid_t new_master = handover->sender;
  EXPECT_EQ(handover->text,
            "READY=1\nSTATUS=generation 1 serving with 2 worker(s)\nMAINPID=" + std::to_string(new_master) + "\n");
  ASSERT_TRUE(server.wait_log("master: stopping 2 worker(s) gracefully", 5s)) << server.log();
  ASSERT_TRUE(server.signal(SIGHUP));  // the rollback's generation of the old master
  ASSERT_TRUE(server.wait_log(std::to_string(old_master) + " master: generation 2: all 2 workers ready", 10s))
      << server.log();
  auto quiet = systemd.next(300ms);
  EXPECT_FALSE(quiet) << "the old master spoke in the window: " << printable(quiet->text);
  ASSERT_EQ(kill(new_master, SIGQUIT), 0);
  EXPECT_NOTIFICATION(systemd,
                      "MAINPID=" + std::to_string(old_master) + "\nSTATUS=stopping; master " +
                          std::to_string(old_master) + " serves again\n",
                      new_master, server.log());
  EXPECT_TRUE(wait_gone(new_master, 15s)) << server.log();
  // Once the old master knows it is alone again, it is the service: its stop is the service's.
  ASSERT_TRUE(server.wait_log(std::to_string(old_master) + " master: rollback complete", 5s)) << server.log();
  ASSERT_TRUE(server.signal(SIGQUIT));
  EXPECT_NOTIFICATION(systemd, "STOPPING=1\nSTATUS=stopping\n", old_master, server.log());
  EXPECT_EQ(server.wait_exit(15s), std::optional<int>(0)) << server.log();
}

}  // namespace

namespace {

// The shipped unit: systemd's own checker accepts it, and its stop timeout leaves
// the master time to drain for the shipped config's graceful_timeout.
TEST(Notify, ShippedUnitFileVerifies) {
  std::string unit = read_file(PREFORKD_SOURCE_DIR "/conf/preforkd.service");
  ASSERT_FALSE(unit.empty());
  for (const char* line : {"\nType=notify\n", "\nNotifyAccess=all\n", "\nExecReload=/usr/sbin/preforkd -s reload --wait -c /etc/preforkd/preforkd.toml\n",
                           "\nKillSignal=SIGQUIT\n", "\nRestart=on-failure\n"})
    EXPECT_NE(unit.find(line), std::string::npos) << line;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(unit, m, std::regex("\nTimeoutStopSec=(\\d+)\n")));
  std::string config = read_file(PREFORKD_SOURCE_DIR "/conf/preforkd.toml");
  std::smatch g;
  ASSERT_TRUE(std::regex_search(config, g, std::regex("\ngraceful_timeout = \"(\\d+)s\"\n")));
  EXPECT_GT(std::stoi(m[1]), std::stoi(g[1])) << "systemd would SIGKILL before the master's own graceful_timeout";

  if (run_command("command -v systemd-analyze") != 0) GTEST_SKIP() << "systemd-analyze not installed: unit not verified";
  // Verified with this build's binary in place of /usr/sbin/preforkd (verify checks it exists);
  // --man=no: Documentation=man:preforkd(8) exists once the package is installed.
  char dir[] = "/tmp/preforkd-unit-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string copy = std::regex_replace(unit, std::regex("/usr/sbin/preforkd"), PREFORKD_BINARY);
  write_file(std::string(dir) + "/preforkd.service", copy);
  std::string out;
  int rc = run_command("systemd-analyze verify --man=no '" + std::string(dir) + "/preforkd.service'", &out);
  run_command("rm -rf '" + std::string(dir) + "'");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out.find("preforkd.service:"), std::string::npos) << "warnings about the unit:\n" << out;
}

}  // namespace
