#include "common/log.hpp"

namespace preforkd {

// Kept apart from log.cpp so that the config loader can validate levels without
// pulling in the logger itself.
bool parse_log_level(std::string_view text, LogLevel* out) {
  static constexpr struct {
    std::string_view name;
    LogLevel level;
  } kLevels[] = {
      {"debug", LogLevel::debug}, {"info", LogLevel::info},   {"notice", LogLevel::notice},
      {"warn", LogLevel::warn},   {"error", LogLevel::error},
  };
  for (const auto& entry : kLevels) {
    if (entry.name == text) {
      if (out != nullptr) *out = entry.level;
      return true;
    }
  }
  return false;
}

}  // namespace preforkd
