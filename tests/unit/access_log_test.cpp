// The access log's Combined Log Format lines and its file handling.
#include "worker/access_log.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

namespace preforkd {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

class AccessLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Fixed zone so the timestamp is exact.
    setenv("TZ", "UTC", 1);
    tzset();
  }
};

TEST_F(AccessLogTest, FormatsCombinedLogFormat) {
  access_log::RequestHeaders headers;
  headers.note("Referer", "http://example.com/a");
  headers.note("USER-AGENT", "curl/7.88.1");
  headers.note("Host", "ignored");
  access_log::Entry entry{"127.0.0.1", "GET", "/index.html?x=1", 1, 1, 200, 344, &headers};
  EXPECT_EQ(access_log::format(entry, 971211336),  // 2000-10-10T20:55:36Z
            "127.0.0.1 - - [10/Oct/2000:20:55:36 +0000] \"GET /index.html?x=1 HTTP/1.1\" 200 344 "
            "\"http://example.com/a\" \"curl/7.88.1\"\n");
}

TEST_F(AccessLogTest, MissingFieldsAreDashes) {
  access_log::RequestHeaders headers;
  access_log::Entry entry{"::1", "HEAD", "/", 1, 0, 304, 0, &headers};
  EXPECT_EQ(access_log::format(entry, 0), "::1 - - [01/Jan/1970:00:00:00 +0000] \"HEAD / HTTP/1.0\" 304 0 \"-\" \"-\"\n");
  access_log::Entry bad{"", "", "", 0, 0, 400, 150, nullptr};
  EXPECT_EQ(access_log::format(bad, 0), "- - - [01/Jan/1970:00:00:00 +0000] \"-\" 400 150 \"-\" \"-\"\n");
}

TEST_F(AccessLogTest, EscapesQuotesBackslashesAndControlBytes) {
  access_log::RequestHeaders headers;
  headers.note("user-agent", "a\"b\\c\x01\xff");
  access_log::Entry entry{"1.2.3.4", "GET", "/x\"y\n", 1, 1, 404, 0, &headers};
  EXPECT_EQ(access_log::format(entry, 0),
            "1.2.3.4 - - [01/Jan/1970:00:00:00 +0000] \"GET /x\\x22y\\x0A HTTP/1.1\" 404 0 \"-\" "
            "\"a\\x22b\\x5Cc\\x01\\xFF\"\n");
}

TEST_F(AccessLogTest, ReadsTheStatusFromAResponseHead) {
  EXPECT_EQ(access_log::status_of("HTTP/1.1 200 OK\r\n"), 200);
  EXPECT_EQ(access_log::status_of("HTTP/1.1 404 Not Found\r\n"), 404);
  EXPECT_EQ(access_log::status_of("HTTP/1.1 "), 0);
  EXPECT_EQ(access_log::status_of("HTTP/1.1 2x0 OK"), 0);
}

TEST_F(AccessLogTest, WritesAppendsAndReopensAfterARename) {
  char tmpl[] = "/tmp/preforkd-access-test.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl, path = dir + "/access.log";
  std::string error;
  EXPECT_FALSE(access_log::enabled());
  ASSERT_TRUE(access_log::open(path, &error)) << error;
  EXPECT_TRUE(access_log::enabled());
  access_log::Entry entry{"127.0.0.1", "GET", "/one", 1, 1, 200, 1, nullptr};
  access_log::write(entry);
  ASSERT_EQ(rename(path.c_str(), (path + ".1").c_str()), 0);
  entry.target = "/two";
  access_log::write(entry);  // still the renamed file
  ASSERT_TRUE(access_log::reopen(&error)) << error;
  entry.target = "/three";
  access_log::write(entry);
  access_log::close();
  EXPECT_FALSE(access_log::enabled());
  std::string old_file = slurp(path + ".1"), new_file = slurp(path);
  EXPECT_NE(old_file.find("/one"), std::string::npos);
  EXPECT_NE(old_file.find("/two"), std::string::npos);
  EXPECT_EQ(old_file.find("/three"), std::string::npos);
  EXPECT_NE(new_file.find("/three"), std::string::npos);
  EXPECT_EQ(new_file.find("/two"), std::string::npos);
  ASSERT_FALSE(access_log::open(dir + "/missing/dir/access.log", &error));
  EXPECT_NE(error.find("No such file or directory"), std::string::npos) << error;
  EXPECT_FALSE(access_log::enabled());
  std::remove(path.c_str());
  std::remove((path + ".1").c_str());
  rmdir(dir.c_str());
}

TEST_F(AccessLogTest, AFullDeviceDropsLinesWithoutFailing) {
  std::string error;
  ASSERT_TRUE(access_log::open("/dev/full", &error)) << error;
  access_log::Entry entry{"127.0.0.1", "GET", "/", 1, 1, 200, 1, nullptr};
  for (int i = 0; i < 100; ++i) access_log::write(entry);  // must neither throw nor abort
  EXPECT_TRUE(access_log::enabled());
  access_log::close();
}

}  // namespace
}  // namespace preforkd
