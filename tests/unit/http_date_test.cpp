// HTTP-date formatting and the three accepted input forms (RFC 9110 §5.6.7).
#include "worker/http_date.hpp"

#include <gtest/gtest.h>

#include <clocale>
#include <cstdio>
#include <string>

namespace preforkd {
namespace {

constexpr std::time_t kRfcExample = 784111777;  // Sun, 06 Nov 1994 08:49:37 GMT

TEST(HttpDateTest, FormatsImfFixdate) {
  EXPECT_EQ(format_http_date(kRfcExample), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(format_http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
  EXPECT_EQ(format_http_date(951782400), "Tue, 29 Feb 2000 00:00:00 GMT");
  EXPECT_EQ(format_http_date(2147483648), "Tue, 19 Jan 2038 03:14:08 GMT");
  EXPECT_EQ(format_http_date(-1), "Wed, 31 Dec 1969 23:59:59 GMT");
}

TEST(HttpDateTest, FormatClampsToFourDigitYears) {
  EXPECT_EQ(format_http_date(253402300799), "Fri, 31 Dec 9999 23:59:59 GMT");
  EXPECT_EQ(format_http_date(253402300800), "Fri, 31 Dec 9999 23:59:59 GMT");
  EXPECT_EQ(format_http_date(-62167219200), "Sat, 01 Jan 0000 00:00:00 GMT");
  EXPECT_EQ(format_http_date(-62167219201), "Sat, 01 Jan 0000 00:00:00 GMT");
}

TEST(HttpDateTest, IgnoresLocaleAndTimezone) {
  // Whatever the environment offers, the output must stay English and in GMT.
  std::setlocale(LC_ALL, "de_DE.UTF-8");
  setenv("TZ", "America/New_York", 1);
  tzset();
  EXPECT_EQ(format_http_date(kRfcExample), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), kRfcExample);
  unsetenv("TZ");
  tzset();
  std::setlocale(LC_ALL, "C");
}

TEST(HttpDateTest, RoundTrip) {
  const std::time_t samples[] = {0,          1,          kRfcExample, 951782400,  951868799,
                                 1483228799, 1700000000, 2147483647,  2147483648, 4102444800,
                                 -1,         -86400,     253402300799};
  for (std::time_t t : samples) {
    const std::string s = format_http_date(t);
    EXPECT_EQ(parse_http_date(s), t) << s;
  }
  // Every day across a leap cycle, at a non-zero time of day.
  for (std::time_t t = 946684800 + 3723; t < 946684800 + 4 * 366 * 86400LL; t += 86400) {
    EXPECT_EQ(parse_http_date(format_http_date(t)), t) << format_http_date(t);
  }
}

TEST(HttpDateTest, ParsesTheThreeRfcForms) {
  EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), kRfcExample);
  EXPECT_EQ(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), kRfcExample);
  EXPECT_EQ(parse_http_date("Sun Nov  6 08:49:37 1994"), kRfcExample);
}

TEST(HttpDateTest, AsctimeDayForms) {
  EXPECT_EQ(parse_http_date("Sun Nov 06 08:49:37 1994"), kRfcExample);
  EXPECT_EQ(parse_http_date("Wed Nov 16 08:49:37 1994"), kRfcExample + 10 * 86400);
  EXPECT_EQ(parse_http_date("Sun Nov 6 08:49:37 1994"), std::nullopt);
  EXPECT_EQ(parse_http_date("Sun Nov   6 08:49:37 1994"), std::nullopt);
  EXPECT_EQ(parse_http_date("Sun Nov  16 08:49:37 1994"), std::nullopt);
}

TEST(HttpDateTest, NamesAreCaseInsensitive) {
  EXPECT_EQ(parse_http_date("sun, 06 NOV 1994 08:49:37 GMT"), kRfcExample);
  EXPECT_EQ(parse_http_date("SUNDAY, 06-nov-94 08:49:37 GMT"), kRfcExample);
}

TEST(HttpDateTest, SurroundingWhitespaceTolerated) {
  EXPECT_EQ(parse_http_date("  Sun, 06 Nov 1994 08:49:37 GMT\t"), kRfcExample);
}

TEST(HttpDateTest, Rfc850TwoDigitYearPivot) {
  // More than 50 years ahead means the previous century (RFC 9110 §5.6.7).
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  ASSERT_NE(gmtime_r(&now, &tm), nullptr);
  const int year = tm.tm_year + 1900;
  auto parsed_year = [](int yy) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "Monday, 01-Jan-%02d 00:00:00 GMT", yy);
    const auto t = parse_http_date(buf);
    if (!t) return -1;
    std::tm out{};
    gmtime_r(&*t, &out);
    return out.tm_year + 1900;
  };
  EXPECT_EQ(parsed_year(year % 100), year);
  EXPECT_EQ(parsed_year((year + 50) % 100), year + 50);
  EXPECT_EQ(parsed_year((year + 51) % 100), year + 51 - 100);
}

TEST(HttpDateTest, LeapSecondAndCalendarEdges) {
  EXPECT_EQ(parse_http_date("Sat, 31 Dec 2016 23:59:60 GMT"), 1483228800);
  EXPECT_EQ(parse_http_date("Tue, 29 Feb 2000 00:00:00 GMT"), 951782400);
  EXPECT_EQ(parse_http_date("Mon, 29 Feb 1900 00:00:00 GMT"), std::nullopt);
  EXPECT_EQ(parse_http_date("Tue, 29 Feb 1994 00:00:00 GMT"), std::nullopt);
  EXPECT_EQ(parse_http_date("Thu, 31 Nov 1994 00:00:00 GMT"), std::nullopt);
}

TEST(HttpDateTest, RejectsOutOfRangeFields) {
  EXPECT_EQ(parse_http_date("Sun, 00 Nov 1994 08:49:37 GMT"), std::nullopt);
  EXPECT_EQ(parse_http_date("Sun, 32 Nov 1994 08:49:37 GMT"), std::nullopt);
  EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 24:00:00 GMT"), std::nullopt);
  EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:60:37 GMT"), std::nullopt);
  EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:61 GMT"), std::nullopt);
  EXPECT_EQ(parse_http_date("Sunday, 06-Nov-94 25:49:37 GMT"), std::nullopt);
  EXPECT_EQ(parse_http_date("Sun Nov 31 08:49:37 1994"), std::nullopt);
}

TEST(HttpDateTest, RejectsGarbage) {
  const char* bad[] = {
      "",
      "garbage",
      "Sun",
      "Sun, 06 Nov 1994 08:49:37 GMTX",
      "Sun, 06 Nov 1994 08:49:37 GMT x",
      "Sun, 06 Nov 1994 08:49:37 UTC",
      "Sun, 06 Nov 1994 08:49:37",
      "Sun, 06 Nov 1994 08:49 GMT",
      "Sun, 6 Nov 1994 08:49:37 GMT",
      "Sun,06 Nov 1994 08:49:37 GMT",
      "Sun, 06  Nov 1994 08:49:37 GMT",
      "Sun, 06 Nov 94 08:49:37 GMT",
      "Sun, 06 Nov 19940 08:49:37 GMT",
      "Sun, +6 Nov 1994 08:49:37 GMT",
      "Sun, 06 Nov 1994 08:49:3a GMT",
      "Foo, 06 Nov 1994 08:49:37 GMT",
      "Sun, 06 Nox 1994 08:49:37 GMT",
      "Sun, 06 November 1994 08:49:37 GMT",
      "Sunday, 06 Nov 1994 08:49:37 GMT",
      "Sun, 06-Nov-94 08:49:37 GMT",
      "Sunday, 06-Nov-1994 08:49:37 GMT",
      "Sunday, 06-Nov-94 08:49:37 GMT junk",
      "Sunday, 06-Nov-94 08:49:37",
      "Sun Nov  6 08:49:37 1994 GMT",
      "Sun Nov  6 08:49:37 94",
      "Sun Nov  6 08:49:37 1994x",
      "Sun, 06 Nov 1994 08:49:37 GMT\r\n",
      "1994-11-06T08:49:37Z",
      "784111777",
  };
  for (const char* s : bad) EXPECT_EQ(parse_http_date(s), std::nullopt) << '"' << s << '"';
  EXPECT_EQ(parse_http_date(std::string_view("Sun, 06 Nov 1994 08:49:37 GMT\0", 30)), std::nullopt);
}

}  // namespace
}  // namespace preforkd
