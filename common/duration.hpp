// Durations as the config writes them: "30s", "500ms", "2m", "1h", "1m30s".
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace preforkd {

// Seconds from a duration string: one or more NUMBER UNIT parts, NUMBER a decimal
// (digits, optionally '.' digits) and UNIT one of h, m, s, ms. Parts go from the
// largest unit to the smallest, each unit at most once, and may be separated by
// spaces ("1m30s", "1m 30s", "1.5s"). No range check: the caller knows its bounds.
// On failure returns nullopt and sets *error to the reason (without the text).
std::optional<double> parse_duration(std::string_view text, std::string* error);

}  // namespace preforkd
