// The [admin] table of the config: off unless written, loopback unless told.
#include <gtest/gtest.h>

#include <string>

#include "common/config.hpp"
#include "tests/unit/config_snippets.hpp"

namespace preforkd {
namespace {

using test::error_of;
using test::kEcho;
using test::parse;

TEST(AdminConfig, OffWhenNotWritten) {
  Config c = parse(std::string(kEcho));
  EXPECT_FALSE(c.admin.enabled);
}

TEST(AdminConfig, AnEmptyTableMeansOnAtLoopbackDefaultPort) {
  Config c = parse(std::string(kEcho) + "[admin]\n");
  EXPECT_TRUE(c.admin.enabled);
  EXPECT_EQ(c.admin.address.to_string(), "127.0.0.1:" + std::to_string(kDefaultAdminPort));
}

TEST(AdminConfig, ExplicitAddressAndEnabledFalse) {
  Config c = parse("[admin]\naddress = \"[::1]:9999\"\n" + std::string(kEcho));
  EXPECT_TRUE(c.admin.enabled);
  EXPECT_EQ(c.admin.address.to_string(), "[::1]:9999");
  c = parse(std::string(kEcho) + "[admin]\nenabled = false\naddress = \"0.0.0.0:9999\"\n");
  EXPECT_FALSE(c.admin.enabled);
}

TEST(AdminConfig, ErrorsNameFileLineColumnAndKey) {
  EXPECT_EQ(error_of(std::string(kEcho) + "[admin]\nport = 1\n"), "/etc/preforkd/p.toml:5:1: admin.port: unknown key");
  EXPECT_EQ(error_of(std::string(kEcho) + "[admin]\nenabled = \"yes\"\n"),
            "/etc/preforkd/p.toml:5:11: admin.enabled: expected true or false");
  EXPECT_NE(error_of(std::string(kEcho) + "[admin]\naddress = \"localhost:80\"\n").find("p.toml:5:11: admin.address: "),
            std::string::npos);
  EXPECT_EQ(error_of("admin = 3\n" + std::string(kEcho)), "/etc/preforkd/p.toml:1:9: admin: expected table");
}

TEST(AdminConfig, MayNotShareATcpListenersAddress) {
  EXPECT_EQ(error_of(std::string(kEcho) + "[admin]\naddress = \"127.0.0.1:9007\"\n"),
            "/etc/preforkd/p.toml:5:11: admin.address: duplicate address 127.0.0.1:9007 (also used by listen[1])");
  // A UDP listener on the same port is a different socket.
  Config c = parse(
      "[[listen]]\naddress = \"127.0.0.1:9007\"\nprotocol = \"udp-echo\"\n[admin]\naddress = \"127.0.0.1:9007\"\n");
  EXPECT_TRUE(c.admin.enabled);
}

}  // namespace
}  // namespace preforkd
