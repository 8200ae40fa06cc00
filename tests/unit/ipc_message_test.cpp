// The master<->worker frame format: encoding, incremental decoding, and the
// defensive rejection of malformed or oversized frames.
#include "common/ipc_message.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace preforkd::ipc {
namespace {

std::string le32(std::uint32_t v) {
  std::string s;
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  return s;
}

std::string le64(std::uint64_t v) {
  std::string s;
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  return s;
}

// A hand-built frame: version, type, two reserved bytes, payload length (LE), payload.
std::string frame(std::uint8_t version, std::uint8_t type, const std::string& payload) {
  std::string f;
  f.push_back(static_cast<char>(version));
  f.push_back(static_cast<char>(type));
  f.push_back(0);
  f.push_back(0);
  f += le32(static_cast<std::uint32_t>(payload.size()));
  f += payload;
  return f;
}

std::string header(std::uint8_t version, std::uint8_t type, std::uint32_t length) {
  std::string f;
  f.push_back(static_cast<char>(version));
  f.push_back(static_cast<char>(type));
  f.push_back(0);
  f.push_back(0);
  f += le32(length);
  return f;
}

void feed(Decoder& d, const std::string& bytes) { d.feed(std::span<const char>(bytes.data(), bytes.size())); }

// Every message the decoder yields until it needs more bytes (or fails).
std::vector<Message> drain(Decoder& d, std::string* error) {
  std::vector<Message> out;
  while (auto m = d.next(error)) out.push_back(std::move(*m));
  return out;
}

std::optional<Message> decode_one(const std::string& bytes, std::string* error) {
  Decoder d;
  feed(d, bytes);
  return d.next(error);
}

// A config text with every byte value (NUL included) and some size to it.
std::string big_config_text(std::size_t size) {
  std::string s;
  s.reserve(size);
  for (std::size_t i = 0; i < size; ++i) s.push_back(static_cast<char>((i * 31 + i / 256) & 0xff));
  return s;
}

std::vector<Message> sample_messages() {
  return {
      Start{7, 3, "/etc/preforkd/preforkd.toml", "workers = 4\n[[listen]]\nport = 8080\n", {3, 4, 17}},
      Ready{},
      Heartbeat{Counters{1, 2, 3}},
      Retire{},
      Retire{2'500},
      Draining{Counters{0xfedcba9876543210ull, 42, std::numeric_limits<std::uint64_t>::max()}},
      Heartbeat{Counters{100, 0, 7}},
      Start{1, 0, "", "", {}},
  };
}

std::string encode_all(const std::vector<Message>& messages) {
  std::string s;
  for (const Message& m : messages) s += encode(m);
  return s;
}

// --- encoding ------------------------------------------------------------------

TEST(IpcMessageTest, ProtocolVersionIsThree) { EXPECT_EQ(kVersion, 3); }

TEST(IpcMessageTest, EncodesHeaderLittleEndian) {
  EXPECT_EQ(encode(Ready{}), std::string("\x03\x02\x00\x00\x00\x00\x00\x00", 8));

  const std::string hb = encode(Heartbeat{Counters{0x0102030405060708ull, 1, 0}});
  ASSERT_EQ(hb.size(), kHeaderSize + 28);  // three counters and an empty protocol list
  EXPECT_EQ(hb.substr(0, 8), std::string("\x03\x03\x00\x00\x1c\x00\x00\x00", 8));
  EXPECT_EQ(hb.substr(8, 8), std::string("\x08\x07\x06\x05\x04\x03\x02\x01", 8));
  EXPECT_EQ(hb.substr(16, 8), le64(1));
  EXPECT_EQ(hb.substr(24, 8), le64(0));

  EXPECT_EQ(hb.substr(32, 4), le32(0));

  const std::string dr = encode(Draining{Counters{1, 2, 3}});
  EXPECT_EQ(static_cast<std::uint8_t>(dr[1]), static_cast<std::uint8_t>(Type::draining));
}

TEST(IpcMessageTest, EncodesRetireWithLingerAsU32) {
  EXPECT_EQ(encode(Retire{}), std::string("\x03\x04\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00", 12));
  EXPECT_EQ(encode(Retire{0x0a0b0c0d}),
            std::string("\x03\x04\x00\x00\x04\x00\x00\x00\x0d\x0c\x0b\x0a", 12));
  EXPECT_EQ(encode(Retire{1500}), frame(kVersion, static_cast<std::uint8_t>(Type::retire), le32(1500)));
}

TEST(IpcMessageTest, EncodesStartPayloadLayout) {
  // No listener fds: the count is still there.
  const std::string f = encode(Start{0x11223344, 5, "ab", "xyz", {}});
  const std::string payload = le32(0x11223344) + le32(5) + le32(2) + "ab" + le32(3) + "xyz" + le32(0);
  EXPECT_EQ(f, frame(kVersion, static_cast<std::uint8_t>(Type::start), payload));
}

TEST(IpcMessageTest, EncodesStartListenerFdsAfterConfigText) {
  const std::string f = encode(Start{2, 1, "p", "t", {3, 0x01020304, -1}});
  const std::string payload =
      le32(2) + le32(1) + le32(1) + "p" + le32(1) + "t" + le32(3) + le32(3) + le32(0x01020304) + le32(0xffffffffu);
  EXPECT_EQ(f, frame(kVersion, static_cast<std::uint8_t>(Type::start), payload));
  EXPECT_EQ(f.substr(0, 8), std::string("\x03\x01\x00\x00\x22\x00\x00\x00", 8));  // 34-byte payload
}

// --- round trips ---------------------------------------------------------------

TEST(IpcMessageTest, RoundTripsStartWithLargeConfigText) {
  Start start{123456, 17, "/srv/conf/preforkd.toml", big_config_text(300'000), {5, 6}};
  std::string error;
  auto m = decode_one(encode(start), &error);
  ASSERT_TRUE(m.has_value()) << error;
  ASSERT_TRUE(std::holds_alternative<Start>(*m));
  const Start& got = std::get<Start>(*m);
  EXPECT_EQ(got.generation, 123456u);
  EXPECT_EQ(got.slot, 17u);
  EXPECT_EQ(got.config_path, start.config_path);
  EXPECT_EQ(got.config_text.size(), start.config_text.size());
  EXPECT_EQ(got.listener_fds, (std::vector<std::int32_t>{5, 6}));
  EXPECT_TRUE(got == start);
}

TEST(IpcMessageTest, RoundTripsStartWithEmptyStrings) {
  Start start{0, 0, "", "", {}};
  auto m = decode_one(encode(start), nullptr);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(*m, Message(start));
  EXPECT_TRUE(std::get<Start>(*m).listener_fds.empty());
}

TEST(IpcMessageTest, RoundTripsStartWithListenerFds) {
  std::vector<std::int32_t> fds;
  for (std::int32_t fd = 3; fd < 3 + 64; ++fd) fds.push_back(fd);
  fds.push_back(-1);
  fds.push_back(std::numeric_limits<std::int32_t>::max());
  fds.push_back(std::numeric_limits<std::int32_t>::min());
  Start start{9, 2, "/c.toml", "[[listen]]\n", fds};
  std::string error;
  auto m = decode_one(encode(start), &error);
  ASSERT_TRUE(m.has_value()) << error;
  ASSERT_TRUE(std::holds_alternative<Start>(*m));
  EXPECT_EQ(std::get<Start>(*m).listener_fds, fds);
  EXPECT_EQ(*m, Message(start));
}

TEST(IpcMessageTest, RoundTripsStartWithMaximalFields) {
  Start start{std::numeric_limits<std::uint32_t>::max(), std::numeric_limits<std::uint32_t>::max(),
              std::string("p\0ath", 5), std::string("\0\xff\n", 3), {std::numeric_limits<std::int32_t>::max()}};
  auto m = decode_one(encode(start), nullptr);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(*m, Message(start));
}

TEST(IpcMessageTest, RoundTripsReady) {
  auto m = decode_one(encode(Ready{}), nullptr);
  ASSERT_TRUE(m.has_value());
  EXPECT_TRUE(std::holds_alternative<Ready>(*m));
}

TEST(IpcMessageTest, RoundTripsHeartbeat) {
  Heartbeat hb{Counters{0xfedcba9876543210ull, 3, std::numeric_limits<std::uint64_t>::max()}};
  auto m = decode_one(encode(hb), nullptr);
  ASSERT_TRUE(m.has_value());
  ASSERT_TRUE(std::holds_alternative<Heartbeat>(*m));
  EXPECT_EQ(std::get<Heartbeat>(*m).counters.accepted, 0xfedcba9876543210ull);
  EXPECT_EQ(std::get<Heartbeat>(*m).counters.active, 3u);
  EXPECT_EQ(std::get<Heartbeat>(*m).counters.requests, std::numeric_limits<std::uint64_t>::max());
}

TEST(IpcMessageTest, RoundTripsRetire) {
  for (std::uint32_t linger : {0u, 1u, 3'000u, std::numeric_limits<std::uint32_t>::max()}) {
    auto m = decode_one(encode(Retire{linger}), nullptr);
    ASSERT_TRUE(m.has_value()) << linger;
    ASSERT_TRUE(std::holds_alternative<Retire>(*m));
    EXPECT_EQ(std::get<Retire>(*m).linger_ms, linger);
  }
}

TEST(IpcMessageTest, RoundTripsDraining) {
  Draining dr{Counters{9, 8, 7}};
  auto m = decode_one(encode(dr), nullptr);
  ASSERT_TRUE(m.has_value());
  ASSERT_TRUE(std::holds_alternative<Draining>(*m));  // not confused with Heartbeat
  EXPECT_EQ(std::get<Draining>(*m), dr);
}

// The largest payload the decoder accepts is exactly kMaxPayload bytes.
TEST(IpcMessageTest, RoundTripsStartOfExactlyMaxPayload) {
  const std::string path = "/p.toml";
  const std::size_t fixed = 4 + 4 + 4 + path.size() + 4 + 4 + 2 * 4;  // ... + fd count + 2 fds
  Start start{2, 1, path, std::string(kMaxPayload - fixed, 'x'), {7, 8}};
  const std::string f = encode(start);
  ASSERT_EQ(f.size(), kHeaderSize + kMaxPayload);
  std::string error;
  auto m = decode_one(f, &error);
  ASSERT_TRUE(m.has_value()) << error;
  EXPECT_EQ(*m, Message(start));
}

// encode() does not refuse a payload over the limit, so a config text this large
// produces a frame that the other side rejects.
TEST(IpcMessageTest, EncodedStartOneByteOverMaxPayloadIsRejected) {
  const std::string path = "/p.toml";
  const std::size_t fixed = 4 + 4 + 4 + path.size() + 4 + 4;
  Start start{2, 1, path, std::string(kMaxPayload - fixed + 1, 'x'), {}};
  Decoder d;
  std::string error;
  feed(d, encode(start));
  EXPECT_FALSE(d.next(&error).has_value());
  EXPECT_TRUE(d.failed());
  EXPECT_FALSE(error.empty());
}

// --- incremental decoding ------------------------------------------------------

TEST(IpcMessageTest, DecodesByteByByte) {
  const std::vector<Message> messages = sample_messages();
  const std::string bytes = encode_all(messages);
  Decoder d;
  std::vector<Message> got;
  std::string error;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    d.feed(std::span<const char>(bytes.data() + i, 1));
    while (auto m = d.next(&error)) got.push_back(std::move(*m));
    ASSERT_FALSE(d.failed()) << "at byte " << i << ": " << error;
  }
  EXPECT_EQ(got, messages);
  EXPECT_FALSE(d.next(&error).has_value());
}

TEST(IpcMessageTest, MessageAppearsOnlyOnceItsLastByteArrives) {
  const std::string bytes = encode(Heartbeat{Counters{5, 6, 7}});
  Decoder d;
  std::string error;
  feed(d, bytes.substr(0, bytes.size() - 1));
  EXPECT_FALSE(d.next(&error).has_value());
  EXPECT_FALSE(d.failed());
  feed(d, bytes.substr(bytes.size() - 1));
  auto m = d.next(&error);
  ASSERT_TRUE(m.has_value()) << error;
  EXPECT_EQ(*m, Message(Heartbeat{Counters{5, 6, 7}}));
}

TEST(IpcMessageTest, DecodesSeveralFramesFromOneFeed) {
  const std::vector<Message> messages = sample_messages();
  Decoder d;
  feed(d, encode_all(messages));
  std::string error;
  EXPECT_EQ(drain(d, &error), messages);
  EXPECT_FALSE(d.failed()) << error;
}

TEST(IpcMessageTest, DecodesFramesSplitAcrossFeedsAtOddBoundaries) {
  const std::vector<Message> messages = sample_messages();
  const std::string bytes = encode_all(messages);
  for (std::size_t chunk : {2u, 3u, 7u, 9u, 13u, 64u}) {
    Decoder d;
    std::vector<Message> got;
    std::string error;
    for (std::size_t i = 0; i < bytes.size(); i += chunk) {
      feed(d, bytes.substr(i, chunk));
      for (auto& m : drain(d, &error)) got.push_back(std::move(m));
    }
    EXPECT_FALSE(d.failed()) << "chunk " << chunk << ": " << error;
    EXPECT_EQ(got, messages) << "chunk " << chunk;
  }
}

// Enough large frames to make the decoder compact its buffer while a partial
// frame is pending.
TEST(IpcMessageTest, DecodesManyLargeFramesWithPartialTail) {
  std::vector<Message> messages;
  for (std::uint32_t i = 0; i < 6; ++i) messages.push_back(Start{i, i, "/c", std::string(40'000 + i, char('a' + i)), {std::int32_t(i)}});
  const std::string bytes = encode_all(messages);
  const std::size_t split = bytes.size() - 1'000;  // inside the last frame
  Decoder d;
  std::string error;
  feed(d, bytes.substr(0, split));
  std::vector<Message> got = drain(d, &error);
  EXPECT_EQ(got.size(), messages.size() - 1);
  EXPECT_FALSE(d.failed()) << error;
  feed(d, bytes.substr(split));
  for (auto& m : drain(d, &error)) got.push_back(std::move(m));
  EXPECT_FALSE(d.failed()) << error;
  EXPECT_EQ(got, messages);

  // And the decoder keeps working afterwards.
  feed(d, encode(Ready{}));
  auto m = d.next(&error);
  ASSERT_TRUE(m.has_value()) << error;
  EXPECT_TRUE(std::holds_alternative<Ready>(*m));
}

TEST(IpcMessageTest, EmptyDecoderYieldsNothing) {
  Decoder d;
  std::string error;
  EXPECT_FALSE(d.next(&error).has_value());
  d.feed(std::span<const char>());
  EXPECT_FALSE(d.next(&error).has_value());
  EXPECT_FALSE(d.failed());
  EXPECT_TRUE(error.empty());
}

TEST(IpcMessageTest, PartialHeaderIsNotAnError) {
  Decoder d;
  std::string error;
  feed(d, encode(Ready{}).substr(0, kHeaderSize - 1));
  EXPECT_FALSE(d.next(&error).has_value());
  EXPECT_FALSE(d.failed());
  EXPECT_TRUE(error.empty());
}

// --- rejected input ------------------------------------------------------------

void expect_rejected(const std::string& bytes, const char* what) {
  Decoder d;
  std::string error;
  feed(d, bytes);
  EXPECT_FALSE(d.next(&error).has_value()) << what;
  EXPECT_TRUE(d.failed()) << what;
  EXPECT_FALSE(error.empty()) << what;
}

TEST(IpcMessageTest, RejectsWrongVersion) {
  std::string f = encode(Ready{});
  f[0] = 1;
  expect_rejected(f, "version 1 (before listener fds and linger)");
  f[0] = 2;
  expect_rejected(f, "version 2 (before protocol counters)");
  f[0] = 4;
  expect_rejected(f, "version 4");
  f[0] = 0;
  expect_rejected(f, "version 0");
  f = encode(Start{1, 1, "a", "b", {}});
  f[0] = static_cast<char>(0xff);
  expect_rejected(f, "version 255");
}

TEST(IpcMessageTest, RejectsUnknownType) {
  expect_rejected(frame(kVersion, 0, ""), "type 0");
  expect_rejected(frame(kVersion, 6, ""), "type 6");
  expect_rejected(frame(kVersion, 255, std::string(24, '\0')), "type 255");
}

TEST(IpcMessageTest, RejectsPayloadLengthOverLimit) {
  expect_rejected(header(kVersion, static_cast<std::uint8_t>(Type::start), kMaxPayload + 1), "max+1");
  expect_rejected(header(kVersion, static_cast<std::uint8_t>(Type::heartbeat), 0xffffffffu), "4 GiB");
}

// The decoder must not wait for (and buffer) a megabyte-plus payload only to
// reject it: the header alone is enough.
TEST(IpcMessageTest, RejectsOversizedFrameBeforeItsPayloadArrives) {
  Decoder d;
  std::string error;
  feed(d, header(kVersion, static_cast<std::uint8_t>(Type::start), kMaxPayload + 1));
  EXPECT_FALSE(d.next(&error).has_value());
  EXPECT_TRUE(d.failed());
  EXPECT_FALSE(error.empty());
  // Whatever follows is dropped; the decoder stays failed.
  feed(d, std::string(4096, 'x'));
  EXPECT_FALSE(d.next(&error).has_value());
  EXPECT_TRUE(d.failed());
}

TEST(IpcMessageTest, MaxPayloadHeaderAloneWaitsForMore) {
  Decoder d;
  std::string error;
  feed(d, header(kVersion, static_cast<std::uint8_t>(Type::start), kMaxPayload));
  EXPECT_FALSE(d.next(&error).has_value());
  EXPECT_FALSE(d.failed()) << error;
}

TEST(IpcMessageTest, RejectsStartWhoseStringOverrunsThePayload) {
  // Frame length is honest (the whole frame is there), but the config text
  // claims 100 bytes and only 10 follow.
  const std::string payload = le32(1) + le32(0) + le32(2) + "ab" + le32(100) + std::string(10, 'c');
  expect_rejected(frame(kVersion, static_cast<std::uint8_t>(Type::start), payload), "text overrun");

  const std::string path_overrun = le32(1) + le32(0) + le32(50) + "ab";
  expect_rejected(frame(kVersion, static_cast<std::uint8_t>(Type::start), path_overrun), "path overrun");

  const std::string huge_len = le32(1) + le32(0) + le32(0) + le32(0xffffffffu) + "abc";
  expect_rejected(frame(kVersion, static_cast<std::uint8_t>(Type::start), huge_len), "4 GiB string");
}

TEST(IpcMessageTest, RejectsTruncatedFixedFields) {
  expect_rejected(frame(kVersion, static_cast<std::uint8_t>(Type::start), le32(1) + "ab"), "start, short slot");
  expect_rejected(frame(kVersion, static_cast<std::uint8_t>(Type::start), le32(1) + le32(2)), "start, no strings");
  expect_rejected(frame(kVersion, static_cast<std::uint8_t>(Type::heartbeat), std::string(23, '\0')),
                  "heartbeat 23 bytes");
  expect_rejected(frame(kVersion, static_cast<std::uint8_t>(Type::draining), ""), "draining empty");
  expect_rejected(frame(kVersion, static_cast<std::uint8_t>(Type::retire), ""), "retire without linger");
  expect_rejected(frame(kVersion, static_cast<std::uint8_t>(Type::retire), "xyz"), "retire 3 bytes");
}

// A version-1 Start payload (no fd count after the config text) is malformed now.
TEST(IpcMessageTest, RejectsStartWithoutListenerFdCount) {
  const std::string payload = le32(1) + le32(0) + le32(2) + "ab" + le32(3) + "xyz";
  expect_rejected(frame(kVersion, static_cast<std::uint8_t>(Type::start), payload), "no fd count");
  expect_rejected(frame(kVersion, static_cast<std::uint8_t>(Type::start), payload + "\x01\x00"), "short fd count");
}

// A hostile count must be refused before anything is reserved for it.
TEST(IpcMessageTest, RejectsStartWithHostileListenerFdCount) {
  const std::string head = le32(1) + le32(0) + le32(2) + "ab" + le32(3) + "xyz";
  for (std::uint32_t count : {0xffffffffu, 0x40000000u, 1'000'000u}) {
    expect_rejected(frame(kVersion, static_cast<std::uint8_t>(Type::start), head + le32(count) + le32(3)),
                    "huge fd count");
  }
}

TEST(IpcMessageTest, RejectsStartWhoseFdsOverrunThePayload) {
  const std::string head = le32(1) + le32(0) + le32(2) + "ab" + le32(3) + "xyz";
  // Three fds announced, two present.
  expect_rejected(frame(kVersion, static_cast<std::uint8_t>(Type::start), head + le32(3) + le32(4) + le32(5)),
                  "one fd short");
  // A partial fd.
  expect_rejected(frame(kVersion, static_cast<std::uint8_t>(Type::start), head + le32(1) + "\x04\x00"),
                  "half an fd");
  // A count below payload/4 but above what remains after the strings.
  const std::string payload = head + le32(6) + le32(4);
  ASSERT_LE(6u, payload.size() / 4);
  expect_rejected(frame(kVersion, static_cast<std::uint8_t>(Type::start), payload), "count beyond remaining");
  // And the exact count is fine.
  Decoder d;
  std::string error;
  feed(d, frame(kVersion, static_cast<std::uint8_t>(Type::start), head + le32(2) + le32(4) + le32(5)));
  auto m = d.next(&error);
  ASSERT_TRUE(m.has_value()) << error;
  EXPECT_EQ(*m, Message(Start{1, 0, "ab", "xyz", {4, 5}}));
}

TEST(IpcMessageTest, RejectsTrailingBytesInsideFrame) {
  expect_rejected(frame(kVersion, static_cast<std::uint8_t>(Type::ready), "x"), "ready + 1");
  expect_rejected(frame(kVersion, static_cast<std::uint8_t>(Type::retire), le32(5) + "x"), "retire + 1");
  expect_rejected(frame(kVersion, static_cast<std::uint8_t>(Type::heartbeat), std::string(25, '\0')),
                  "heartbeat 25 bytes");
  expect_rejected(frame(kVersion, static_cast<std::uint8_t>(Type::draining), std::string(32, '\0')),
                  "draining 32 bytes");

  std::string start = encode(Start{1, 2, "a", "b", {3}}).substr(kHeaderSize) + "!";
  expect_rejected(frame(kVersion, static_cast<std::uint8_t>(Type::start), start), "start + 1");
  std::string start3 = encode(Start{1, 2, "a", "b", {3}}).substr(kHeaderSize) + "!!!";
  expect_rejected(frame(kVersion, static_cast<std::uint8_t>(Type::start), start3), "start + 3 (less than an fd)");
}

TEST(IpcMessageTest, FailedDecoderStaysFailed) {
  Decoder d;
  std::string error;
  feed(d, frame(kVersion, 9, ""));
  EXPECT_FALSE(d.next(&error).has_value());
  ASSERT_TRUE(d.failed());
  const std::string first_error = error;
  EXPECT_FALSE(first_error.empty());

  // Valid frames afterwards are not decoded: the stream cannot be resynchronised.
  feed(d, encode(Ready{}) + encode(Heartbeat{Counters{1, 2, 3}}));
  error.clear();
  EXPECT_FALSE(d.next(&error).has_value());
  EXPECT_FALSE(d.next(&error).has_value());
  EXPECT_TRUE(d.failed());
}

TEST(IpcMessageTest, ValidFramesBeforeABadOneAreDelivered) {
  Decoder d;
  std::string error;
  feed(d, encode(Ready{}) + encode(Heartbeat{Counters{4, 5, 6}}) + frame(2, 2, "") + encode(Retire{}));
  auto a = d.next(&error);
  ASSERT_TRUE(a.has_value()) << error;
  EXPECT_TRUE(std::holds_alternative<Ready>(*a));
  auto b = d.next(&error);
  ASSERT_TRUE(b.has_value()) << error;
  EXPECT_EQ(*b, Message(Heartbeat{Counters{4, 5, 6}}));
  EXPECT_FALSE(d.failed());
  EXPECT_FALSE(d.next(&error).has_value());
  EXPECT_TRUE(d.failed());
  EXPECT_FALSE(d.next(&error).has_value());  // the Retire behind it is never delivered
}

TEST(IpcMessageTest, FailureWithoutErrorPointerStillFails) {
  Decoder d;
  feed(d, frame(0, 2, ""));
  EXPECT_FALSE(d.next(nullptr).has_value());
  EXPECT_TRUE(d.failed());
}

// --- protocol counters (version 3) ----------------------------------------------


Counters with_protocol(std::vector<ProtocolCounter> protocol) {
  Counters c{7, 8, 9};
  c.protocol = std::move(protocol);
  return c;
}

// A heartbeat payload: the three counters, then `count` and the entries as given.
std::string heartbeat_payload(std::uint32_t count, const std::string& entries) {
  return le64(1) + le64(2) + le64(3) + le32(count) + entries;
}

std::string entry(std::uint8_t kind, const std::string& name, std::uint64_t value) {
  return std::string(1, static_cast<char>(kind)) + std::string(1, static_cast<char>(name.size())) + name + le64(value);
}

TEST(IpcProtocolCounters, RoundTripInHeartbeatAndDraining) {
  Counters c = with_protocol({{"http_x", false, 5}, {"kv_commands", false, 0xfedcba9876543210ull}, {"kv_keys", true, 3}});
  for (const Message& m : {Message(Heartbeat{c}), Message(Draining{c})}) {
    Decoder d;
    feed(d, encode(m));
    std::string error;
    auto got = d.next(&error);
    ASSERT_TRUE(got.has_value()) << error;
    EXPECT_EQ(*got, m);
  }
  const std::string f = encode(Heartbeat{with_protocol({{"kv_keys", true, 3}})});
  EXPECT_EQ(f.substr(kHeaderSize + 24), le32(1) + entry(1, "kv_keys", 3));
}

TEST(IpcProtocolCounters, RejectsWhatCouldNotBeAMetricName) {
  auto hb = [](std::uint32_t count, const std::string& entries) {
    return frame(kVersion, static_cast<std::uint8_t>(Type::heartbeat), heartbeat_payload(count, entries));
  };
  EXPECT_TRUE([&] {
    Decoder d;
    feed(d, hb(1, entry(0, "kv_commands", 1)));
    std::string error;
    return d.next(&error).has_value();
  }());
  expect_rejected(hb(1, entry(0, "Kv", 1)), "upper case");
  expect_rejected(hb(1, entry(0, "kv x", 1)), "space");
  expect_rejected(hb(1, entry(0, "kv\n# HELP", 1)), "newline");
  expect_rejected(hb(1, entry(0, "kv{a=\"b\"}", 1)), "braces");
  expect_rejected(hb(1, entry(0, "", 1)), "empty name");
  expect_rejected(hb(1, entry(0, std::string(kMaxCounterNameBytes + 1, 'a'), 1)), "name too long");
  expect_rejected(hb(1, entry(2, "kv", 1)), "kind 2");
  expect_rejected(hb(2, entry(0, "b", 1) + entry(0, "a", 1)), "unsorted");
  expect_rejected(hb(2, entry(0, "a", 1) + entry(1, "a", 1)), "twice");
  expect_rejected(hb(2, entry(0, "a", 1)), "count beyond entries");
  expect_rejected(hb(0xffffffffu, ""), "hostile count");
  expect_rejected(hb(kMaxProtocolCounters + 1, ""), "over the bound");
  expect_rejected(hb(1, entry(0, "a", 1) + "x"), "trailing byte");
  expect_rejected(hb(1, entry(0, "a", 1).substr(0, 5)), "truncated value");
}

}  // namespace
}  // namespace preforkd::ipc
