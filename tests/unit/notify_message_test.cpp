// Decoding an exec worker's sd_notify datagrams, including what a confused or
// hostile program may send.
#include "master/notify_message.hpp"

#include <gtest/gtest.h>

#include <string>

namespace preforkd {
namespace {

TEST(NotifyMessage, WhatProgramsSend) {
  // gunicorn's, go-systemd's constants, systemd-notify --ready --status=...
  NotifyMessage m = parse_notify_message("READY=1\nSTATUS=Gunicorn arbiter booted");
  EXPECT_TRUE(m.ready);
  EXPECT_EQ(m.status, "Gunicorn arbiter booted");
  EXPECT_FALSE(m.stopping || m.watchdog || m.extend_timeout_usec);
  EXPECT_TRUE(parse_notify_message("WATCHDOG=1").watchdog);
  EXPECT_TRUE(parse_notify_message("STOPPING=1\n").stopping);
  EXPECT_EQ(parse_notify_message("EXTEND_TIMEOUT_USEC=5000000").extend_timeout_usec, 5'000'000u);
  m = parse_notify_message("MAINPID=123\nREADY=1\nBARRIER=1\nX_CUSTOM=2\n");
  EXPECT_TRUE(m.ready);
  EXPECT_EQ(m, (NotifyMessage{.ready = true}));
}

TEST(NotifyMessage, MalformedValuesAreSkipped) {
  EXPECT_FALSE(parse_notify_message("READY=2").ready);
  EXPECT_FALSE(parse_notify_message("READY").ready);
  EXPECT_FALSE(parse_notify_message("READY =1").ready);
  EXPECT_FALSE(parse_notify_message("WATCHDOG=trigger").watchdog);
  EXPECT_FALSE(parse_notify_message("EXTEND_TIMEOUT_USEC=").extend_timeout_usec);
  EXPECT_FALSE(parse_notify_message("EXTEND_TIMEOUT_USEC=12x").extend_timeout_usec);
  EXPECT_FALSE(parse_notify_message("EXTEND_TIMEOUT_USEC=-5").extend_timeout_usec);
  // Beyond an hour (or beyond 64 bits) is an hour: no deadline can overflow.
  EXPECT_EQ(parse_notify_message("EXTEND_TIMEOUT_USEC=99999999999999999999999").extend_timeout_usec, kMaxExtendUsec);
  EXPECT_EQ(parse_notify_message("EXTEND_TIMEOUT_USEC=7200000000").extend_timeout_usec, kMaxExtendUsec);
}

TEST(NotifyMessage, NulBytesDropTheDatagramAndStatusIsBounded) {
  EXPECT_EQ(parse_notify_message(std::string("READY=1\0", 8)), NotifyMessage{});
  EXPECT_EQ(parse_notify_message(std::string("STATUS=a\0READY=1", 16)), NotifyMessage{});
  NotifyMessage m = parse_notify_message("STATUS=" + std::string(1000, 'x'));
  ASSERT_TRUE(m.status);
  EXPECT_EQ(m.status->size(), kMaxNotifyStatus);
  EXPECT_EQ(parse_notify_message("STATUS=a\tb\rc\x7f").status, "a b c ");
  EXPECT_EQ(parse_notify_message("STATUS=").status, "");
  EXPECT_EQ(parse_notify_message("STATUS=first\nSTATUS=second").status, "second");  // the last one counts
}

}  // namespace
}  // namespace preforkd
