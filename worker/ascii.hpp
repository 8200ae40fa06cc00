// ASCII helpers for protocol tokens (header names), which are case-insensitive
// by the RFCs and must not depend on the C locale.
#pragma once

#include <cstddef>
#include <string_view>

namespace preforkd {

// Equal bytes are the common case and cost one compare; two bytes that differ
// are the same letter only if they differ in the case bit alone and are letters.
inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x == y) continue;
    char lower = static_cast<char>(x | 0x20);
    if (lower != static_cast<char>(y | 0x20) || lower < 'a' || lower > 'z') return false;
  }
  return true;
}

}  // namespace preforkd
