// The keys of the control socket and of the binary upgrade's hand-over:
// `control_socket` (on by default, next to the pid file; "" turns it off) and
// `upgrade_handover` ("auto" or "manual").
#include <gtest/gtest.h>

#include <string>

#include "common/config.hpp"
#include "tests/unit/config_snippets.hpp"

namespace preforkd {
namespace {

using test::error_of;
using test::kEcho;
using test::parse;

TEST(ControlConfig, OnByDefaultNextToThePidFile) {
  EXPECT_EQ(parse(std::string(kEcho)).control_socket, "/run/preforkd.sock");
  EXPECT_EQ(parse("pid_file = \"/var/run/web.pid\"\n" + std::string(kEcho)).control_socket, "/var/run/web.sock");
  // A pid file not named *.pid keeps its whole name.
  EXPECT_EQ(parse("pid_file = \"/run/web\"\n" + std::string(kEcho)).control_socket, "/run/web.sock");
  // Relative pid file: resolved first, so the socket is next to where it really is.
  EXPECT_EQ(parse("pid_file = \"run/p.pid\"\n" + std::string(kEcho)).control_socket, "/etc/preforkd/run/p.sock");
}

TEST(ControlConfig, ExplicitPathRelativePathAndOff) {
  EXPECT_EQ(parse("control_socket = \"/run/ctl.sock\"\n" + std::string(kEcho)).control_socket, "/run/ctl.sock");
  EXPECT_EQ(parse("control_socket = \"ctl.sock\"\n" + std::string(kEcho)).control_socket, "/etc/preforkd/ctl.sock");
  EXPECT_EQ(parse("control_socket = \"\"\n" + std::string(kEcho)).control_socket, "");
}

TEST(ControlConfig, APathTooLongForAUnixSocketIsAnErrorWhenWrittenAndOffByDefault) {
  std::string deep = "/" + std::string(120, 'd');
  EXPECT_EQ(error_of("control_socket = \"" + deep + "\"\n" + std::string(kEcho)),
            "/etc/preforkd/p.toml:1:18: control_socket: \"" + deep +
                "\": longer than 107 bytes, the limit of a Unix socket path");
  EXPECT_EQ(parse("pid_file = \"" + deep + ".pid\"\n" + std::string(kEcho)).control_socket, "");
  // 107 bytes exactly fit.
  std::string fits = "/" + std::string(101, 'f') + ".sock";
  ASSERT_EQ(fits.size(), kMaxControlSocketPath);
  EXPECT_EQ(parse("control_socket = \"" + fits + "\"\n" + std::string(kEcho)).control_socket, fits);
}

TEST(ControlConfig, ControlSocketErrors) {
  EXPECT_EQ(error_of("control_socket = 1\n" + std::string(kEcho)),
            "/etc/preforkd/p.toml:1:18: control_socket: expected string");
  EXPECT_EQ(error_of("control_socket = false\n" + std::string(kEcho)),
            "/etc/preforkd/p.toml:1:18: control_socket: expected string");
}

TEST(ControlConfig, UpgradeHandover) {
  EXPECT_EQ(parse(std::string(kEcho)).upgrade_handover, UpgradeHandover::automatic);
  EXPECT_EQ(parse("upgrade_handover = \"auto\"\n" + std::string(kEcho)).upgrade_handover, UpgradeHandover::automatic);
  EXPECT_EQ(parse("upgrade_handover = \"manual\"\n" + std::string(kEcho)).upgrade_handover, UpgradeHandover::manual);
  EXPECT_EQ(error_of("upgrade_handover = \"Manual\"\n" + std::string(kEcho)),
            "/etc/preforkd/p.toml:1:20: upgrade_handover: unknown value \"Manual\" (expected \"auto\" or \"manual\")");
  EXPECT_EQ(error_of("upgrade_handover = true\n" + std::string(kEcho)),
            "/etc/preforkd/p.toml:1:20: upgrade_handover: expected string");
  EXPECT_EQ(handover_name(UpgradeHandover::manual), "manual");
  EXPECT_EQ(handover_name(UpgradeHandover::automatic), "auto");
}

}  // namespace
}  // namespace preforkd
