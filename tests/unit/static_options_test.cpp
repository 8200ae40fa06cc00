// The http protocol's static-file keys (index, gzip_static, error_page, expires,
// cache_control): loaded through the real config loader with FILE:LINE:COL
// errors, and the Expires / Cache-Control lines they turn into.
#include "worker/static_options.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <climits>
#include <filesystem>
#include <string>

#include "common/config.hpp"

namespace preforkd {
namespace {

namespace fs = std::filesystem;

class StaticKeys : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/preforkd-static-keys.XXXXXX";
    ASSERT_NE(mkdtemp(templ), nullptr);
    char real[PATH_MAX];
    ASSERT_NE(realpath(templ, real), nullptr);
    dir_ = real;
    source_ = dir_ + "/preforkd.toml";
    fs::create_directory(dir_ + "/html");
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A valid http listener with `keys` appended inside it (from line 5 on).
  static std::string http(std::string_view keys) {
    return "[[listen]]\n"
           "address = \"127.0.0.1:8080\"\n"
           "protocol = \"http\"\n"
           "root = \"html\"\n" +
           std::string(keys);
  }
  const ListenerConfig& load(std::string_view keys) {
    config_ = parse_config(http(keys), source_);
    return config_.listeners.at(0);
  }
  std::string error(std::string_view keys) {
    try {
      parse_config(http(keys), source_);
    } catch (const ConfigError& e) {
      std::string what = e.what();
      const std::string prefix = source_ + ":";
      if (what.compare(0, prefix.size(), prefix) != 0) return "unexpected prefix: " + what;
      return what.substr(prefix.size());
    }
    return "(no error)";
  }
  std::string dir_, source_;
  Config config_;
};

TEST_F(StaticKeys, Defaults) {
  const ListenerConfig& l = load("");
  EXPECT_EQ(std::get<std::vector<std::string>>(*l.key("index")), std::vector<std::string>{"index.html"});
  EXPECT_EQ(std::get<bool>(*l.key("gzip_static")), false);
  EXPECT_TRUE(std::get<StringTable>(*l.key("error_page")).empty());
  EXPECT_EQ(std::get<std::string>(*l.key("expires")), "off");
  EXPECT_EQ(std::get<std::string>(*l.key("cache_control")), "");
}

TEST_F(StaticKeys, WrittenValues) {
  const ListenerConfig& l = load(
      "index = [\"index.htm\", \"default.html\"]\n"
      "gzip_static = true\n"
      "error_page = { 404 = \"/errors/404.html\", 500 = \"/50x.html\", 403 = \"/%34%30%33.html\" }\n"
      "expires = \"30d\"\n"
      "cache_control = \"public\"\n");
  EXPECT_EQ(std::get<std::vector<std::string>>(*l.key("index")),
            (std::vector<std::string>{"index.htm", "default.html"}));
  EXPECT_TRUE(std::get<bool>(*l.key("gzip_static")));
  EXPECT_EQ(std::get<StringTable>(*l.key("error_page")),
            (StringTable{{403, "/%34%30%33.html"}, {404, "/errors/404.html"}, {500, "/50x.html"}}))
      << "sorted by status";
  EXPECT_EQ(std::get<std::string>(*l.key("expires")), "30d");
}

TEST_F(StaticKeys, BadValuesAreReportedAtTheValue) {
  EXPECT_EQ(error("index = \"index.html\"\n"),
            "5:9: listen[1].index: expected a list of strings, such as [\"a\", \"b\"]");
  EXPECT_EQ(error("index = [\"a/b.html\"]\n"),
            "5:10: listen[1].index: an index file is a name in the directory, without '/'");
  EXPECT_EQ(error("index = [\"ok.html\", \"..\"]\n"),
            "5:21: listen[1].index: an index file may not be \".\" or \"..\"");
  EXPECT_EQ(error("index = [\"\"]\n").substr(0, 23), "5:10: listen[1].index: ");
  EXPECT_EQ(error("error_page = { 404 = \"404.html\" }\n"),
            "5:22: listen[1].error_page.404: expected a path under root starting with '/' (percent-escapes "
            "allowed, no NUL)");
  EXPECT_EQ(error("error_page = { 404 = \"/../x.html\" }\n"),
            "5:22: listen[1].error_page.404: \"..\" is not allowed in an error page's path");
  EXPECT_EQ(error("error_page = { 404 = \"/errors/\" }\n"),
            "5:22: listen[1].error_page.404: an error page is a file, not a directory");
  EXPECT_EQ(error("error_page = { 200 = \"/x.html\" }\n"),
            "5:16: listen[1].error_page.200: expected an integer key between 400 and 599");
  EXPECT_EQ(error("error_page = { abc = \"/x.html\" }\n"),
            "5:16: listen[1].error_page.abc: expected an integer key between 400 and 599");
  EXPECT_EQ(error("expires = \"soon\"\n"),
            "5:11: listen[1].expires: \"soon\": expected off, epoch, max or a time such as \"1h\", \"30d\", \"-1\"");
  EXPECT_EQ(error("expires = \"1y\"\n"),
            "5:11: listen[1].expires: \"1y\": unknown unit (use s, m, h, d or w)");
  EXPECT_EQ(error("cache_control = \"public\\r\\nX: y\"\n"),
            "5:17: listen[1].cache_control: only printable ASCII (a header value): no control characters or "
            "line breaks");
  EXPECT_EQ(error("gzip_static = \"yes\"\n").substr(0, 29), "5:15: listen[1].gzip_static: ");
}

TEST_F(StaticKeys, NotAllowedForOtherProtocols) {
  std::string text = "[[listen]]\naddress = \"127.0.0.1:9007\"\nprotocol = \"tcp-echo\"\nindex = [\"a\"]\n";
  try {
    parse_config(text, source_);
    ADD_FAILURE() << "accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("4:9: listen[1].index: not allowed for protocol \"tcp-echo\""),
              std::string::npos)
        << e.what();
  }
}

TEST(Expires, NginxTimeSyntax) {
  std::string error;
  auto e = parse_expires("off", &error);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->kind, Expires::Kind::off);
  EXPECT_EQ(parse_expires("epoch", &error)->kind, Expires::Kind::epoch);
  EXPECT_EQ(parse_expires("max", &error)->kind, Expires::Kind::max);
  EXPECT_EQ(parse_expires("90", &error)->seconds, 90) << "a bare number is seconds, as in nginx";
  EXPECT_EQ(parse_expires("30d", &error)->seconds, 30 * 86400);
  EXPECT_EQ(parse_expires("1h30m", &error)->seconds, 5400);
  EXPECT_EQ(parse_expires("2w", &error)->seconds, 14 * 86400);
  EXPECT_EQ(parse_expires("-1", &error)->seconds, -1);
  EXPECT_EQ(parse_expires("-1h", &error)->seconds, -3600);
  for (std::string_view bad : {"", "-", "h", "1x", "1h-1", "99999999999999999999", "5000000000s"})
    EXPECT_FALSE(parse_expires(bad, &error)) << bad;
}

TEST(Expires, HeaderLines) {
  EXPECT_EQ(cache_headers_for(Expires{}, "").fixed, "");
  EXPECT_EQ(cache_headers_for(Expires{}, "public").fixed, "Cache-Control: public\r\n");
  CacheHeaders rel = cache_headers_for(Expires{Expires::Kind::relative, 3600}, "public");
  EXPECT_TRUE(rel.relative);
  EXPECT_EQ(rel.seconds, 3600);
  EXPECT_EQ(rel.fixed, "Cache-Control: max-age=3600, public\r\n") << "Expires itself changes every second";
  EXPECT_EQ(cache_headers_for(Expires{Expires::Kind::relative, -1}, "").fixed, "Cache-Control: no-cache\r\n");
  EXPECT_EQ(cache_headers_for(Expires{Expires::Kind::epoch, 0}, "").fixed,
            "Expires: Thu, 01 Jan 1970 00:00:01 GMT\r\nCache-Control: no-cache\r\n");
  EXPECT_EQ(cache_headers_for(Expires{Expires::Kind::max, 0}, "").fixed,
            "Expires: Thu, 31 Dec 2037 23:55:55 GMT\r\nCache-Control: max-age=315360000\r\n");
}

}  // namespace
}  // namespace preforkd
