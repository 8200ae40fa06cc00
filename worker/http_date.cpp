// HTTP-date formatting and parsing by hand, so neither depends on the C locale or TZ.
#include "worker/http_date.hpp"

#include <chrono>
#include <cstddef>

namespace preforkd {
namespace {

constexpr const char* kDays[7] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr const char* kLongDays[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                      "Thursday", "Friday", "Saturday"};
constexpr const char* kMonths[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// IMF-fixdate has a four-digit year; outside 0000..9999 the output would not be
// a valid HTTP-date, so formatting clamps to this range.
constexpr std::time_t kMinTime = -62167219200;  // 0000-01-01T00:00:00Z
constexpr std::time_t kMaxTime = 253402300799;  // 9999-12-31T23:59:59Z

void put2(char* p, int v) {
  p[0] = static_cast<char>('0' + v / 10);
  p[1] = static_cast<char>('0' + v % 10);
}

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

class Cursor {
 public:
  explicit Cursor(std::string_view s) : s_(s) {}

  bool done() const { return pos_ == s_.size(); }

  bool lit(std::string_view want) {
    if (s_.substr(pos_, want.size()) != want) return false;
    pos_ += want.size();
    return true;
  }

  // Exactly `width` ASCII digits; no sign, no spaces (sscanf would allow both).
  bool digits(int width, int* out) {
    if (s_.size() - pos_ < static_cast<std::size_t>(width)) return false;
    int v = 0;
    for (int k = 0; k < width; ++k) {
      const char c = s_[pos_ + k];
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    pos_ += width;
    *out = v;
    return true;
  }

  // Names are matched case-insensitively: RFC 9110 asks recipients to be robust
  // and no two names differ only in case.
  template <std::size_t N>
  bool name(const char* const (&names)[N], int* index) {
    for (std::size_t k = 0; k < N; ++k) {
      const std::string_view want(names[k]);
      if (s_.size() - pos_ < want.size()) continue;
      bool match = true;
      for (std::size_t j = 0; j < want.size() && match; ++j) {
        match = ascii_lower(s_[pos_ + j]) == ascii_lower(want[j]);
      }
      if (match) {
        pos_ += want.size();
        *index = static_cast<int>(k);
        return true;
      }
    }
    return false;
  }

  bool time_of_day(int* h, int* m, int* sec) {
    return digits(2, h) && lit(":") && digits(2, m) && lit(":") && digits(2, sec);
  }

 private:
  std::string_view s_;
  std::size_t pos_ = 0;
};

// The weekday is parsed but not cross-checked against the date, as other servers
// do: a wrong weekday is a client bug, not an ambiguity about the instant.
std::optional<std::time_t> to_time(int year, int month0, int day, int h, int m, int s) {
  if (h > 23 || m > 59 || s > 60) return std::nullopt;  // 60: leap second, per RFC 9110
  using namespace std::chrono;
  const year_month_day ymd{std::chrono::year{year}, std::chrono::month{static_cast<unsigned>(month0 + 1)},
                           std::chrono::day{static_cast<unsigned>(day)}};
  if (!ymd.ok()) return std::nullopt;  // also rejects day 0, 31 Nov and 29 Feb of common years
  const long long days = sys_days{ymd}.time_since_epoch().count();
  return static_cast<std::time_t>(days * 86400LL + h * 3600LL + m * 60LL + s);
}

// "Sun, 06 Nov 1994 08:49:37 GMT"
std::optional<std::time_t> parse_imf(std::string_view text) {
  Cursor c(text);
  int wday, day, mon, year, h, m, s;
  if (c.name(kDays, &wday) && c.lit(", ") && c.digits(2, &day) && c.lit(" ") &&
      c.name(kMonths, &mon) && c.lit(" ") && c.digits(4, &year) && c.lit(" ") &&
      c.time_of_day(&h, &m, &s) && c.lit(" GMT") && c.done()) {
    return to_time(year, mon, day, h, m, s);
  }
  return std::nullopt;
}

// RFC 9110 §5.6.7: a two-digit year more than 50 years in the future means the
// most recent past year with those digits.
int expand_two_digit_year(int yy) {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  const int current = ::gmtime_r(&now, &tm) != nullptr ? tm.tm_year + 1900 : 2000;
  int year = current - current % 100 + yy;
  if (year > current + 50) year -= 100;
  else if (year <= current - 50) year += 100;
  return year;
}

// "Sunday, 06-Nov-94 08:49:37 GMT"
std::optional<std::time_t> parse_rfc850(std::string_view text) {
  Cursor c(text);
  int wday, day, mon, yy, h, m, s;
  if (c.name(kLongDays, &wday) && c.lit(", ") && c.digits(2, &day) && c.lit("-") &&
      c.name(kMonths, &mon) && c.lit("-") && c.digits(2, &yy) && c.lit(" ") &&
      c.time_of_day(&h, &m, &s) && c.lit(" GMT") && c.done()) {
    return to_time(expand_two_digit_year(yy), mon, day, h, m, s);
  }
  return std::nullopt;
}

// "Sun Nov  6 08:49:37 1994" (day is two digits or space + one digit)
std::optional<std::time_t> parse_asctime(std::string_view text) {
  Cursor c(text);
  int wday, day, mon, year, h, m, s;
  if (!(c.name(kDays, &wday) && c.lit(" ") && c.name(kMonths, &mon) && c.lit(" "))) {
    return std::nullopt;
  }
  if (!(c.lit(" ") ? c.digits(1, &day) : c.digits(2, &day))) return std::nullopt;
  if (c.lit(" ") && c.time_of_day(&h, &m, &s) && c.lit(" ") && c.digits(4, &year) && c.done()) {
    return to_time(year, mon, day, h, m, s);
  }
  return std::nullopt;
}

}  // namespace

std::string format_http_date(std::time_t t) {
  if (t < kMinTime) t = kMinTime;
  if (t > kMaxTime) t = kMaxTime;
  std::tm tm{};
  if (::gmtime_r(&t, &tm) == nullptr) return "Thu, 01 Jan 1970 00:00:00 GMT";  // unreachable after clamping

  std::string out = "Www, DD Mmm YYYY HH:MM:SS GMT";
  char* p = out.data();
  const char* day = kDays[tm.tm_wday];
  const char* mon = kMonths[tm.tm_mon];
  const int year = tm.tm_year + 1900;
  p[0] = day[0], p[1] = day[1], p[2] = day[2];
  put2(p + 5, tm.tm_mday);
  p[8] = mon[0], p[9] = mon[1], p[10] = mon[2];
  put2(p + 12, year / 100);
  put2(p + 14, year % 100);
  put2(p + 17, tm.tm_hour);
  put2(p + 20, tm.tm_min);
  put2(p + 23, tm.tm_sec);
  return out;
}

std::optional<std::time_t> parse_http_date(std::string_view text) {
  // Surrounding OWS belongs to the header field, not the date; tolerate it.
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  if (text.size() < 4) return std::nullopt;

  // The character after the day name tells the three forms apart.
  if (text[3] == ',') return parse_imf(text);
  if (text[3] == ' ') return parse_asctime(text);
  return parse_rfc850(text);
}

}  // namespace preforkd
