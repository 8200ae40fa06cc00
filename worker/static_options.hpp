// The built-in http protocol's own [[listen]] keys, beyond the HTTP layer's: the
// document root, index files, precompressed siblings, error pages and cache
// headers. Declared with their checks (so a bad value is a FILE:LINE:COL error at
// -t, start and reload) and read back once per listener.
#pragma once

#include <uv.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <preforkd/protocol.hpp>

namespace preforkd {

// nginx's `expires`: off, epoch, max, or a time from now (negative: in the past).
struct Expires {
  enum class Kind { off, epoch, max, relative };
  Kind kind = Kind::off;
  std::int64_t seconds = 0;  // Kind::relative
};

// "off", "epoch", "max", or [-]NUMBER[UNIT]... with units s, m, h, d, w (nginx's
// time syntax: "30d", "1h30m", "-1", "90"); nullopt with *error otherwise.
std::optional<Expires> parse_expires(std::string_view text, std::string* error);

// The Cache-Control and Expires lines for a file answer: `fixed` never changes and
// goes into the cache's ready-made headers; `relative` (Kind::relative) needs an
// Expires line per second, the time plus `expires.seconds`.
struct CacheHeaders {
  std::string fixed;
  bool relative = false;
  std::int64_t seconds = 0;
};
CacheHeaders cache_headers_for(const Expires& expires, std::string_view cache_control);

struct StaticOptions {
  std::string root;                                 // canonical
  std::vector<std::string> index = {"index.html"};  // tried in order for a directory
  bool gzip_static = false;
  std::vector<std::pair<int, std::string>> error_pages;  // status -> normalised path under root
  Expires expires;
  std::string cache_control;  // extra directives ("public", "immutable"), "" for none
  uv_loop_t* loop = nullptr;  // its uv_now() is the cache's clock; null: CLOCK_MONOTONIC_COARSE
};

void declare_static_keys(Schema& schema);
StaticOptions static_options_of(const Listener& listener);

}  // namespace preforkd
