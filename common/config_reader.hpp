// What the config loader (common/config.cpp) lends to the parsers of sections
// that live in their own files ([exec]: common/exec_config.cpp): its error format
// and its readers for the value kinds every table shares, so that their errors
// read exactly like every other key's ("FILE:LINE:COL: KEY: message").
#pragma once

#include <cstdlib>
#include <initializer_list>
#include <string>
#include <string_view>
#include <toml++/toml.h>

namespace preforkd {

class ConfigReader {
 public:
  virtual ~ConfigReader() = default;
  // Throws ConfigError("FILE:LINE:COL: KEY: message"). Not virtual itself: g++
  // does not carry [[noreturn]] through a virtual call.
  [[noreturn]] void fail(const toml::source_region& at, std::string_view key, std::string_view message) const {
    raise(at, key, message);
    std::abort();  // raise() always throws
  }
  virtual void reject_unknown_keys(const toml::table& table, std::string_view prefix,
                                   std::initializer_list<std::string_view> known) const = 0;
  virtual const std::string& non_empty_string(const toml::node& node, std::string_view key) const = 0;
  virtual const toml::table& expect_table(const toml::node& node, std::string_view key) const = 0;
  // A duration: 0 < seconds <= 3600, as a number or "30s", "500ms", ...
  virtual double seconds(const toml::node& node, std::string_view key) const = 0;
  // A path as written, made absolute against the config file's directory.
  virtual std::string resolve(const toml::node& node, std::string_view key, std::string_view path) = 0;
  // A readable directory (resolved, canonical), checked now.
  virtual std::string checked_directory(const toml::node& node, const std::string& key) = 0;

 protected:
  virtual void raise(const toml::source_region& at, std::string_view key, std::string_view message) const = 0;
};

}  // namespace preforkd
