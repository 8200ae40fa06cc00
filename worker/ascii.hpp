// ASCII helpers for protocol tokens (header names), which are case-insensitive
// by the RFCs and must not depend on the C locale.
#pragma once

#include <cstddef>
#include <string_view>

namespace preforkd {

inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

}  // namespace preforkd
