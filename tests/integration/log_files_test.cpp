// Log files opened by root must not follow a symbolic link (nginx's CVE-2016-1247
// pattern): whoever can write the log directory could otherwise make the root
// master chown, or root workers append to, any file on the system.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/integration/harness.hpp"

using namespace itest;

namespace {

struct Owner {
  uid_t uid = 0;
  off_t size = -1;
};

Owner owner_of_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return {st.st_uid, st.st_size};
}

// A root-owned file and, next to it, a symlink to it where a log is expected.
void plant_symlink(const Preforkd& server, const std::string& link_name) {
  write_file(server.dir() + "/root-owned", "");
  ASSERT_EQ(::chown((server.dir() + "/root-owned").c_str(), 0, 0), 0);
  ASSERT_EQ(::symlink("root-owned", (server.dir() + "/" + link_name).c_str()), 0);
}

TEST(LogFiles, AccessLogSymlinkIsRefusedAndItsTargetUntouched) {
  if (geteuid() != 0) GTEST_SKIP() << "not root: the chown this guards against needs root";
  Preforkd server({.workers = 2, .user = "nobody", .log_config = "access_log = \"access.log\"\n"});
  ASSERT_EQ(chmod(server.dir().c_str(), 0755), 0);  // mkdtemp's 0700: let nobody reach www/
  plant_symlink(server, "access.log");
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  auto r = http_get(server.http_port(), "/hello.txt");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << "serving goes on without the access log";
  Owner target = owner_of_file(server.dir() + "/root-owned");
  EXPECT_EQ(target.uid, 0u) << "the master chowned the symlink's target\n" << server.log();
  EXPECT_EQ(target.size, 0) << "a worker appended to the symlink's target\n" << server.log();
  EXPECT_TRUE(server.wait_log("access.log: is a symbolic link", 2s)) << server.log();
  // And again on the reopen after a rotation.
  ASSERT_TRUE(server.signal(SIGUSR1));
  ASSERT_TRUE(server.wait_log("logs reopened", 10s, 3)) << server.log();
  EXPECT_EQ(owner_of_file(server.dir() + "/root-owned").uid, 0u) << server.log();
}

TEST(LogFiles, ErrorLogSymlinkIsRefusedAtStart) {
  if (geteuid() != 0) GTEST_SKIP() << "not root: the chown this guards against needs root";
  Preforkd server({.workers = 1, .user = "nobody", .log_config = "error_log = \"error.log\"\n"});
  plant_symlink(server, "error.log");
  std::string why;
  EXPECT_FALSE(server.start(1s, &why));
  EXPECT_EQ(server.wait_exit(5s), std::optional<int>(1)) << server.log();
  EXPECT_NE(server.log().find("error.log: is a symbolic link"), std::string::npos) << server.log();
  Owner target = owner_of_file(server.dir() + "/root-owned");
  EXPECT_EQ(target.uid, 0u);
  EXPECT_EQ(target.size, 0) << "the master wrote its log through the symlink";
}

// The container idiom: a link to a device (or pipe) is followed, and nothing
// about the device changes. /dev/null stands in for /dev/stdout (itself a link to
// /proc/self/fd/1, which in this harness is the log file: a regular file, refused).
TEST(LogFiles, AccessLogLinkToADeviceIsFollowed) {
  Preforkd server({.workers = 1, .log_config = "access_log = \"access.log\"\n"});
  ASSERT_EQ(symlink("/dev/null", (server.dir() + "/access.log").c_str()), 0);
  struct stat before {};
  ASSERT_EQ(stat("/dev/null", &before), 0);
  std::string why;
  ASSERT_TRUE(server.start(10s, &why)) << why;
  auto r = http_get(server.http_port(), "/hello.txt");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  ASSERT_TRUE(server.signal(SIGUSR1));
  ASSERT_TRUE(server.wait_log("logs reopened", 10s, 2)) << server.log();
  EXPECT_EQ(server.log().find("symbolic link"), std::string::npos) << server.log();
  struct stat after {};
  ASSERT_EQ(stat("/dev/null", &after), 0);
  EXPECT_EQ(after.st_uid, before.st_uid);
  EXPECT_EQ(after.st_mode, before.st_mode);
}

}  // namespace
