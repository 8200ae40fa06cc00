// Config snippets and helpers for unit tests of one part of the config: a
// listener valid on its own, parsing from text, and the error a text produces.
#pragma once

#include <string>
#include <string_view>

#include "common/config.hpp"

namespace preforkd::test {

// A listener that is valid on its own, for tests about something else.
inline constexpr std::string_view kEcho =
    "[[listen]]\n"
    "address = \"127.0.0.1:9007\"\n"
    "protocol = \"tcp-echo\"\n";

inline Config parse(const std::string& text) { return parse_config(text, "/etc/preforkd/p.toml"); }

// The ConfigError's message, or "" if the text loads.
inline std::string error_of(const std::string& text) {
  try {
    parse(text);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace preforkd::test
