// The duration grammar of the config file; see common/duration.hpp.
#include "common/duration.hpp"

#include <charconv>
#include <system_error>

namespace preforkd {

namespace {

struct Unit {
  std::string_view name;
  double multiplier;
  double divisor;  // ms divides by 1000 rather than multiplying by an inexact 0.001
};

// Largest first: the order parts must come in.
constexpr Unit kUnits[] = {{"h", 3600, 1}, {"m", 60, 1}, {"s", 1, 1}, {"ms", 1, 1000}};
constexpr std::string_view kUnitList = "ms, s, m or h";

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// Length of DIGITS ['.' DIGITS] at the start of text, 0 if there is none.
size_t number_length(std::string_view text) {
  size_t n = 0;
  while (n < text.size() && is_digit(text[n])) ++n;
  if (n == 0) return 0;
  if (n + 1 < text.size() && text[n] == '.' && is_digit(text[n + 1])) {
    n += 2;
    while (n < text.size() && is_digit(text[n])) ++n;
  }
  return n;
}

std::optional<double> failed(std::string* error, std::string message) {
  *error = std::move(message);
  return std::nullopt;
}

}  // namespace

std::optional<double> parse_duration(std::string_view text, std::string* error) {
  if (text.empty()) return failed(error, "empty duration (expected e.g. \"30s\", \"500ms\", \"2m\", \"1h\")");
  double total = 0;
  size_t next_unit = 0;  // index into kUnits of the largest unit still allowed
  std::string_view rest = text;
  while (!rest.empty()) {
    if (rest.front() == '-') return failed(error, "negative durations are not allowed");
    const size_t digits = number_length(rest);
    if (digits == 0) return failed(error, "expected a number at \"" + std::string(rest) + "\"");
    const std::string_view number = rest.substr(0, digits);
    double value = 0;
    // from_chars reports a value beyond double's range instead of returning inf.
    const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
    if (ec == std::errc::result_out_of_range) return failed(error, "number too large");
    if (ec != std::errc() || end != number.data() + number.size()) {
      return failed(error, "expected a number at \"" + std::string(rest) + "\"");
    }
    rest.remove_prefix(digits);
    size_t letters = 0;
    while (letters < rest.size() && is_letter(rest[letters])) ++letters;
    const std::string_view unit_name = rest.substr(0, letters);
    if (unit_name.empty()) {
      return failed(error, "missing unit after " + std::string(number) + " (expected " + std::string(kUnitList) +
                               "; a plain number of seconds is written without quotes)");
    }
    size_t unit = 0;
    while (unit < std::size(kUnits) && kUnits[unit].name != unit_name) ++unit;
    if (unit == std::size(kUnits)) {
      return failed(error, "unknown unit \"" + std::string(unit_name) + "\" (expected " + std::string(kUnitList) + ")");
    }
    if (unit < next_unit) {
      return failed(error, "units must go from largest to smallest, each at most once (e.g. \"1m30s\")");
    }
    next_unit = unit + 1;
    total += value * kUnits[unit].multiplier / kUnits[unit].divisor;
    rest.remove_prefix(letters);
    // Spaces separate parts ("1m 30s", as nginx allows); they may not end the text.
    size_t spaces = 0;
    while (spaces < rest.size() && rest[spaces] == ' ') ++spaces;
    if (spaces > 0 && spaces == rest.size()) return failed(error, "trailing space");
    rest.remove_prefix(spaces);
  }
  return total;
}

}  // namespace preforkd
