// The protocol API's schema half, without processes: what registration refuses,
// and how the config loader validates a protocol's declared keys (types,
// defaults, ranges, FILE:LINE:COL errors) against a registry of test protocols.
#include "common/protocol_registry.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "common/config.hpp"
#include "worker/builtin_protocols.hpp"

namespace preforkd {
namespace {

// A protocol whose declare() is a lambda, so each test writes only its schema.
class Declared final : public Protocol {
 public:
  template <class F>
  Declared(std::string name, Transport transport, F declare)
      : Protocol(std::move(name), transport), declare_(std::move(declare)) {}
  void declare(Schema& schema) const override { declare_(schema); }

 private:
  std::function<void(Schema&)> declare_;
};

std::string registration_error(Protocol& p, ProtocolRegistry& registry) {
  try {
    registry.add(p);
  } catch (const RegistrationError& e) {
    return e.what();
  }
  return "(registered)";
}

std::string registration_error(Protocol& p) {
  ProtocolRegistry registry;
  register_builtin_protocols(registry);
  return registration_error(p, registry);
}

TEST(ProtocolRegistration, RefusesBadAndDuplicateNames) {
  Declared upper("Kv", Transport::stream, [](Schema&) {});
  EXPECT_EQ(registration_error(upper),
            "protocol \"Kv\": not a valid protocol name ([a-z][a-z0-9-]*, at most 32 bytes)");
  Declared underscore("k_v", Transport::stream, [](Schema&) {});
  EXPECT_NE(registration_error(underscore).find("not a valid protocol name"), std::string::npos);
  Declared empty("", Transport::stream, [](Schema&) {});
  EXPECT_NE(registration_error(empty).find("not a valid protocol name"), std::string::npos);
  Declared long_name(std::string(33, 'a'), Transport::stream, [](Schema&) {});
  EXPECT_NE(registration_error(long_name).find("not a valid protocol name"), std::string::npos);
  Declared http("http", Transport::stream, [](Schema&) {});
  EXPECT_EQ(registration_error(http), "protocol \"http\": registered twice");
  Declared fine("kv-2", Transport::stream, [](Schema&) {});
  EXPECT_EQ(registration_error(fine), "(registered)");
}

TEST(ProtocolRegistration, RefusesBadKeys) {
  auto refused = [](std::function<void(Schema&)> declare) {
    Declared p("kv", Transport::stream, std::move(declare));
    return registration_error(p);
  };
  EXPECT_EQ(refused([](Schema& s) { s.integer("Max", 1, 0, 2); }),
            "protocol \"kv\": key \"Max\": not a valid key name ([a-z][a-z0-9_]*, at most 48 bytes)");
  EXPECT_EQ(refused([](Schema& s) { s.boolean("address", true); }),
            "protocol \"kv\": key \"address\": every listener has this key already");
  EXPECT_EQ(refused([](Schema& s) { s.duration("send_timeout", 1); }),
            "protocol \"kv\": key \"send_timeout\": every listener has this key already");
  EXPECT_EQ(refused([](Schema& s) { s.integer("n", 5, 6, 9); }), "protocol \"kv\": key \"n\": default outside [min, max]");
  EXPECT_EQ(refused([](Schema& s) { s.integer("n", 5, 9, 1); }), "protocol \"kv\": key \"n\": min is greater than max");
  EXPECT_EQ(refused([](Schema& s) { s.duration("t", 0); }),
            "protocol \"kv\": key \"t\": default must be greater than 0 and at most 3600 s");
  EXPECT_EQ(refused([](Schema& s) { s.duration("t", 3601); }),
            "protocol \"kv\": key \"t\": default must be greater than 0 and at most 3600 s");
  EXPECT_EQ(refused([](Schema& s) {
              s.boolean("a", true);
              s.integer("a", 1, 0, 2);
            }),
            "protocol \"kv\": key \"a\": declared twice");
  EXPECT_EQ(refused([](Schema& s) { s.path("p", ""); }), "protocol \"kv\": key \"p\": a path's default must not be empty");
  // A key another protocol declares too is fine: each listener is checked against its own.
  EXPECT_EQ(refused([](Schema& s) { s.duration("idle_timeout", 5); }), "(registered)");
}

TEST(ProtocolRegistration, RefusesBadCountersAndMetricNameClashes) {
  auto refused = [](std::function<void(Schema&)> declare) {
    Declared p("kv", Transport::stream, std::move(declare));
    return registration_error(p);
  };
  EXPECT_EQ(refused([](Schema& s) { s.counter("bad name", "h"); }),
            "protocol \"kv\": counter \"bad name\": not a valid counter name ([a-z][a-z0-9_]*, at most 48 bytes)");
  EXPECT_EQ(refused([](Schema& s) {
              s.counter("sets", "h");
              s.gauge("sets", "h");
            }),
            "protocol \"kv\": counter \"sets\": declared twice");
  // "a-b" + "c" and "a" + "b_c" would both be preforkd_a_b_c.
  ProtocolRegistry registry;
  Declared first("a-b", Transport::stream, [](Schema& s) { s.counter("c", "h"); });
  Declared second("a", Transport::stream, [](Schema& s) { s.counter("b_c", "h"); });
  EXPECT_EQ(registration_error(first, registry), "(registered)");
  EXPECT_EQ(registration_error(second, registry),
            "protocol \"a\": counter \"b_c\": its metric name is taken by another protocol");
  ASSERT_NE(registry.counter("a_b_c"), nullptr);
  EXPECT_EQ(registry.counter("a_b_c")->name, "c");
  EXPECT_EQ(registry.find("a"), nullptr) << "a refused protocol is not half-registered";
}

TEST(ProtocolRegistration, BuiltinsAreRegisteredLikeAnyOther) {
  ProtocolRegistry registry;
  register_builtin_protocols(registry);
  ASSERT_EQ(registry.protocols().size(), 3u);
  const ProtocolSpec* http = registry.find("http");
  ASSERT_NE(http, nullptr);
  ASSERT_NE(http->protocol, nullptr);
  EXPECT_EQ(http->protocol->name(), "http");
  ASSERT_NE(http->key("root"), nullptr);
  EXPECT_EQ(http->key("root")->type, KeyType::directory);
  EXPECT_TRUE(http->key("root")->required);
  EXPECT_EQ(std::get<std::int64_t>(http->key("max_header_size")->default_value), 16384);
  EXPECT_EQ(registry.find("tcp-echo")->key("root"), nullptr);
  EXPECT_EQ(registry.find("udp-echo")->transport, Transport::datagram);
  EXPECT_TRUE(registry.find("udp-echo")->keys.empty());
  EXPECT_EQ(registry.expected_names(), "http, tcp-echo or udp-echo");
}

// --- the key schema through the config loader -----------------------------------

class ProtocolKeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/preforkd-keys-test.XXXXXX";
    ASSERT_NE(mkdtemp(templ), nullptr);
    dir_ = std::filesystem::canonical(templ).string();
    std::filesystem::create_directory(dir_ + "/data");
    register_builtin_protocols(registry_);
    registry_.add(kv_);
    registry_.add(tcp_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Config parse(const std::string& listener_lines) {
    return parse_config("[[listen]]\naddress = \"127.0.0.1:7000\"\nprotocol = \"kv\"\n" + listener_lines,
                        dir_ + "/p.toml", registry_);
  }
  std::string error(const std::string& text) {
    try {
      parse_config(text, dir_ + "/p.toml", registry_);
    } catch (const ConfigError& e) {
      std::string what = e.what();
      return what.substr(what.find(':') + 1);
    }
    return "(no error)";
  }
  std::string kv_error(const std::string& listener_lines) {
    return error("[[listen]]\naddress = \"127.0.0.1:7000\"\nprotocol = \"kv\"\n" + listener_lines);
  }

  std::string dir_;
  ProtocolRegistry registry_;
  Declared kv_{"kv", Transport::stream, [](Schema& s) {
                 s.integer("max_keys", 1000, 1, 1'000'000);
                 s.boolean("read_only", false);
                 s.duration("expiry", 30);
                 s.string("banner", "hello");
                 s.path("dump_file", "kv.dump");
                 s.string("secret", std::nullopt);
                 s.counter("commands", "Commands answered.");
               }};
  // A protocol that only names a transport ([exec]'s "tcp"): no keys of its own.
  Protocol tcp_{"tcp", Transport::stream};
};

TEST_F(ProtocolKeysTest, DefaultsApplyAndWrittenValuesAreTyped) {
  const Config c = parse("secret = \"s\"\n");
  const ListenerConfig& l = c.listeners[0];
  EXPECT_EQ(l.protocol.name, "kv");
  EXPECT_EQ(l.protocol.transport, Transport::stream);
  ASSERT_EQ(l.keys.size(), 6u) << "every declared key has a value, in declaration order";
  EXPECT_EQ(l.keys[0].key, "max_keys");
  EXPECT_EQ(std::get<std::int64_t>(*l.key("max_keys")), 1000);
  EXPECT_EQ(std::get<bool>(*l.key("read_only")), false);
  EXPECT_DOUBLE_EQ(std::get<double>(*l.key("expiry")), 30.0);
  EXPECT_EQ(std::get<std::string>(*l.key("banner")), "hello");
  EXPECT_EQ(std::get<std::string>(*l.key("dump_file")), dir_ + "/kv.dump") << "a default path is relative to the config";
  EXPECT_EQ(std::get<std::string>(*l.key("secret")), "s");

  const Config w = parse("secret = \"s\"\nmax_keys = 5\nread_only = true\nexpiry = \"1m30s\"\nbanner = \"\"\n"
                         "dump_file = \"/var/kv\"\nsend_timeout = 2\nbacklog = 7\n");
  const ListenerConfig& x = w.listeners[0];
  EXPECT_EQ(std::get<std::int64_t>(*x.key("max_keys")), 5);
  EXPECT_TRUE(std::get<bool>(*x.key("read_only")));
  EXPECT_DOUBLE_EQ(std::get<double>(*x.key("expiry")), 90.0);
  EXPECT_EQ(std::get<std::string>(*x.key("banner")), "");
  EXPECT_EQ(std::get<std::string>(*x.key("dump_file")), "/var/kv");
  EXPECT_DOUBLE_EQ(x.send_timeout_s, 2.0) << "the stream transport's own key";
  EXPECT_EQ(x.backlog, 7);
}

TEST_F(ProtocolKeysTest, WrongTypesAndRangesAreReportedAtTheirLineAndColumn) {
  EXPECT_EQ(kv_error("secret = \"s\"\nmax_keys = \"many\"\n"), "5:12: listen[1].max_keys: expected integer");
  EXPECT_EQ(kv_error("secret = \"s\"\nmax_keys = 0\n"), "5:12: listen[1].max_keys: must be between 1 and 1000000");
  EXPECT_EQ(kv_error("secret = \"s\"\nmax_keys = 1000001\n"),
            "5:12: listen[1].max_keys: must be between 1 and 1000000");
  EXPECT_EQ(kv_error("secret = \"s\"\nread_only = 1\n"), "5:13: listen[1].read_only: expected true or false");
  EXPECT_EQ(kv_error("secret = \"s\"\nexpiry = \"5x\"\n"),
            "5:10: listen[1].expiry: \"5x\": unknown unit \"x\" (expected ms, s, m or h)");
  EXPECT_EQ(kv_error("secret = \"s\"\nbanner = 3\n"), "5:10: listen[1].banner: expected string");
  EXPECT_EQ(kv_error("secret = \"s\"\ndump_file = \"\"\n"), "5:13: listen[1].dump_file: must not be empty");
}

TEST_F(ProtocolKeysTest, UnknownKeysOtherProtocolsKeysAndMissingRequiredOnes) {
  EXPECT_EQ(kv_error("secret = \"s\"\nmax_kyes = 5\n"), "5:1: listen[1].max_kyes: unknown key");
  // Known to this binary, but another protocol's: not silently ignored.
  EXPECT_EQ(kv_error("secret = \"s\"\nroot = \"data\"\n"), "5:8: listen[1].root: not allowed for protocol \"kv\"");
  EXPECT_EQ(kv_error("secret = \"s\"\nmax_datagram_size = 5\n"),
            "5:21: listen[1].max_datagram_size: not allowed for protocol \"kv\"");
  EXPECT_EQ(kv_error(""), "1:1: listen[1].secret: missing required key (protocol \"kv\" needs it)");
  // And the other way round: kv's keys on a built-in.
  EXPECT_EQ(error("[[listen]]\naddress = \"127.0.0.1:7\"\nprotocol = \"tcp-echo\"\nmax_keys = 1\n"),
            "4:12: listen[1].max_keys: not allowed for protocol \"tcp-echo\"");
  EXPECT_EQ(error("[[listen]]\naddress = \"127.0.0.1:7\"\nprotocol = \"smtp\"\n"),
            "3:12: listen[1].protocol: unknown protocol \"smtp\" (expected http, tcp-echo, udp-echo, kv or tcp)");
}

TEST_F(ProtocolKeysTest, AProtocolThatOnlyNamesATransportTakesOnlyTheTransportsKeys) {
  const Config c = parse_config("[[listen]]\naddress = \"127.0.0.1:7\"\nprotocol = \"tcp\"\nsend_timeout = 3\n",
                                dir_ + "/p.toml", registry_);
  EXPECT_EQ(c.listeners[0].protocol.transport, Transport::stream);
  EXPECT_TRUE(c.listeners[0].keys.empty());
  EXPECT_EQ(error("[[listen]]\naddress = \"127.0.0.1:7\"\nprotocol = \"tcp\"\nidle_timeout = 3\n"),
            "4:16: listen[1].idle_timeout: not allowed for protocol \"tcp\"");
}

}  // namespace
}  // namespace preforkd
