// The static handler's header grammars as pure functions: entity-tag lists
// (If-None-Match / If-Match, RFC 9110 13.1), byte ranges (RFC 9110 14.1.2) and
// Accept-Encoding with q-values (RFC 9110 12.5.3).
#include "worker/static_request.hpp"

#include <gtest/gtest.h>

namespace preforkd {
namespace {

constexpr std::string_view kTag = "\"5f3a1b2c-64\"";

TEST(EtagList, WeakComparisonForIfNoneMatch) {
  EXPECT_TRUE(etag_list_matches("\"5f3a1b2c-64\"", kTag, false));
  EXPECT_TRUE(etag_list_matches("W/\"5f3a1b2c-64\"", kTag, false)) << "weak comparison ignores W/";
  EXPECT_TRUE(etag_list_matches("\"x\", \"5f3a1b2c-64\"", kTag, false)) << "a list";
  EXPECT_TRUE(etag_list_matches(" ,\"x\",,W/\"5f3a1b2c-64\" ", kTag, false)) << "empty elements and OWS";
  EXPECT_TRUE(etag_list_matches("*", kTag, false));
  EXPECT_TRUE(etag_list_matches(" * ", kTag, false));
  EXPECT_FALSE(etag_list_matches("\"5f3a1b2c-65\"", kTag, false));
  EXPECT_FALSE(etag_list_matches("5f3a1b2c-64", kTag, false)) << "an unquoted tag is malformed";
  EXPECT_FALSE(etag_list_matches("\"5f3a1b2c-64", kTag, false)) << "unterminated";
  EXPECT_FALSE(etag_list_matches("", kTag, false));
}

TEST(EtagList, StrongComparisonForIfMatch) {
  EXPECT_TRUE(etag_list_matches("\"5f3a1b2c-64\"", kTag, true));
  EXPECT_FALSE(etag_list_matches("W/\"5f3a1b2c-64\"", kTag, true)) << "a weak tag never matches strongly";
  EXPECT_FALSE(etag_list_matches("\"5f3a1b2c-64\"", "W/\"5f3a1b2c-64\"", true));
  EXPECT_TRUE(etag_list_matches("*", kTag, true));
}

RangeAnswer range_of(std::string_view value, std::uint64_t size, ByteRange* r) { return parse_range(value, size, r); }

TEST(ByteRanges, SingleRangesInEveryForm) {
  ByteRange r;
  ASSERT_EQ(range_of("bytes=0-9", 100, &r), RangeAnswer::partial);
  EXPECT_EQ(r.first, 0u);
  EXPECT_EQ(r.last, 9u);
  EXPECT_EQ(r.length(), 10u);
  ASSERT_EQ(range_of("bytes=90-", 100, &r), RangeAnswer::partial);
  EXPECT_EQ(r.first, 90u);
  EXPECT_EQ(r.last, 99u);
  ASSERT_EQ(range_of("bytes=-10", 100, &r), RangeAnswer::partial) << "suffix";
  EXPECT_EQ(r.first, 90u);
  EXPECT_EQ(r.last, 99u);
  ASSERT_EQ(range_of("bytes=-1000", 100, &r), RangeAnswer::partial) << "a suffix longer than the file is all of it";
  EXPECT_EQ(r.first, 0u);
  EXPECT_EQ(r.last, 99u);
  ASSERT_EQ(range_of("bytes=50-1000", 100, &r), RangeAnswer::partial) << "the last position is clamped";
  EXPECT_EQ(r.last, 99u);
  ASSERT_EQ(range_of("Bytes= 5-5 ", 100, &r), RangeAnswer::partial) << "the unit is case-insensitive";
  EXPECT_EQ(r.length(), 1u);
  ASSERT_EQ(range_of("bytes=0-99999999999999999999999", 100, &r), RangeAnswer::partial) << "saturates";
  EXPECT_EQ(r.last, 99u);
}

TEST(ByteRanges, UnsatisfiableWhenNothingOverlaps) {
  ByteRange r;
  EXPECT_EQ(range_of("bytes=100-", 100, &r), RangeAnswer::unsatisfiable);
  EXPECT_EQ(range_of("bytes=200-300", 100, &r), RangeAnswer::unsatisfiable);
  EXPECT_EQ(range_of("bytes=-0", 100, &r), RangeAnswer::unsatisfiable);
  EXPECT_EQ(range_of("bytes=0-", 0, &r), RangeAnswer::unsatisfiable) << "an empty file has no byte 0";
  EXPECT_EQ(range_of("bytes=100-,200-", 100, &r), RangeAnswer::unsatisfiable);
}

TEST(ByteRanges, IgnoredWhenInvalidOrAnotherUnit) {
  ByteRange r;
  for (std::string_view bad : {"", "bytes=", "bytes=5", "bytes=9-5", "bytes=a-b", "bytes=1-2x", "items=0-1",
                               "bytes=--1", "bytes=0-1,3"})
    EXPECT_EQ(range_of(bad, 100, &r), RangeAnswer::whole) << bad;
}

TEST(ByteRanges, SeveralRangesAreAnsweredWhole) {
  ByteRange r;
  EXPECT_EQ(range_of("bytes=0-1,5-6", 100, &r), RangeAnswer::several);
  EXPECT_EQ(range_of("bytes=0-1,500-", 100, &r), RangeAnswer::several) << "one satisfiable of two";
}

TEST(AcceptEncoding, GzipWithQValues) {
  EXPECT_TRUE(accepts_gzip("gzip"));
  EXPECT_TRUE(accepts_gzip("gzip, deflate, br"));
  EXPECT_TRUE(accepts_gzip("br;q=1.0, GZIP;q=0.5"));
  EXPECT_TRUE(accepts_gzip("x-gzip"));
  EXPECT_TRUE(accepts_gzip("*"));
  EXPECT_TRUE(accepts_gzip("gzip;q=0.001"));
  EXPECT_FALSE(accepts_gzip("gzip;q=0"));
  EXPECT_FALSE(accepts_gzip("gzip;q=0.000"));
  EXPECT_FALSE(accepts_gzip("gzip;q=0, *")) << "an explicit refusal wins over *";
  EXPECT_FALSE(accepts_gzip("*;q=0"));
  EXPECT_FALSE(accepts_gzip("deflate, br"));
  EXPECT_FALSE(accepts_gzip("identity"));
  EXPECT_FALSE(accepts_gzip("")) << "no header: nginx sends the plain file";
  EXPECT_FALSE(accepts_gzip("gzip;q=2")) << "a malformed q-value does not say yes";
  EXPECT_FALSE(accepts_gzip("gzip;q=x"));
  EXPECT_FALSE(accepts_gzip("gzipx"));
}

}  // namespace
}  // namespace preforkd
