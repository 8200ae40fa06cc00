// The http protocol's static-file keys: declarations with their checks, and the
// values of one listener.
#include "worker/static_options.hpp"

#include <charconv>

#include "worker/static_path.hpp"

namespace preforkd {
namespace {

// nginx's `expires max`: a date far away and ten years of max-age.
constexpr std::int64_t kMaxAgeOfMax = 315360000;
// Bounds a relative expiry to what an Expires date can say (and time_t holds).
constexpr std::int64_t kMaxExpiresSeconds = 100LL * 365 * 86400;

std::string check_index_name(std::string_view name) {
  if (name.find('/') != std::string_view::npos) return "an index file is a name in the directory, without '/'";
  if (name == "." || name == "..") return "an index file may not be \".\" or \"..\"";
  if (name.find('\0') != std::string_view::npos) return "NUL in an index file name";
  return {};
}

std::string check_error_page(std::string_view path) {
  std::string normalized;
  int status = normalize_path(path, &normalized);
  if (status == 400) return "expected a path under root starting with '/' (percent-escapes allowed, no NUL)";
  if (status == 403) return "\"..\" is not allowed in an error page's path";
  if (normalized.back() == '/') return "an error page is a file, not a directory";
  return {};
}

std::string check_expires(std::string_view text) {
  std::string error;
  return parse_expires(text, &error) ? std::string() : error;
}

// Printable ASCII, as a header value must be; what goes after "Cache-Control: ".
std::string check_cache_control(std::string_view text) {
  for (char c : text)
    if (c < 0x20 || c > 0x7e) return "only printable ASCII (a header value): no control characters or line breaks";
  return {};
}

}  // namespace

std::optional<Expires> parse_expires(std::string_view text, std::string* error) {
  if (text == "off") return Expires{};
  if (text == "epoch") return Expires{Expires::Kind::epoch, 0};
  if (text == "max") return Expires{Expires::Kind::max, 0};
  std::string_view rest = text;
  bool negative = !rest.empty() && rest.front() == '-';
  if (negative) rest.remove_prefix(1);
  if (rest.empty()) {
    *error = "expected off, epoch, max or a time such as \"1h\", \"30d\", \"-1\"";
    return std::nullopt;
  }
  std::int64_t total = 0;
  while (!rest.empty()) {
    std::int64_t n = 0;
    auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), n);
    if (ec != std::errc() || end == rest.data()) {
      *error = "\"" + std::string(text) + "\": expected off, epoch, max or a time such as \"1h\", \"30d\", \"-1\"";
      return std::nullopt;
    }
    if (n < 0) {
      *error = "\"" + std::string(text) + "\": only the whole time may be negative (\"-1h\")";
      return std::nullopt;
    }
    rest.remove_prefix(static_cast<std::size_t>(end - rest.data()));
    std::int64_t unit = 1;
    if (!rest.empty()) {
      switch (rest.front()) {
        case 's': unit = 1; break;
        case 'm': unit = 60; break;
        case 'h': unit = 3600; break;
        case 'd': unit = 86400; break;
        case 'w': unit = 7 * 86400; break;
        default:
          *error = "\"" + std::string(text) + "\": unknown unit (use s, m, h, d or w)";
          return std::nullopt;
      }
      rest.remove_prefix(1);
    }
    if (n > kMaxExpiresSeconds / unit || total + n * unit > kMaxExpiresSeconds) {
      *error = "\"" + std::string(text) + "\": more than 100 years";
      return std::nullopt;
    }
    total += n * unit;
  }
  return Expires{Expires::Kind::relative, negative ? -total : total};
}

CacheHeaders cache_headers_for(const Expires& expires, std::string_view cache_control) {
  CacheHeaders out;
  // nginx: a time >= 0 says max-age, a negative one (or epoch) no-cache.
  std::string directive;
  switch (expires.kind) {
    case Expires::Kind::off: break;
    case Expires::Kind::epoch:
      out.fixed = "Expires: Thu, 01 Jan 1970 00:00:01 GMT\r\n";
      directive = "no-cache";
      break;
    case Expires::Kind::max:
      out.fixed = "Expires: Thu, 31 Dec 2037 23:55:55 GMT\r\n";
      directive = "max-age=" + std::to_string(kMaxAgeOfMax);
      break;
    case Expires::Kind::relative:
      out.relative = true;
      out.seconds = expires.seconds;
      directive = expires.seconds < 0 ? "no-cache" : "max-age=" + std::to_string(expires.seconds);
      break;
  }
  if (!cache_control.empty()) directive += (directive.empty() ? "" : ", ") + std::string(cache_control);
  if (!directive.empty()) out.fixed += "Cache-Control: " + directive + "\r\n";
  return out;
}

void declare_static_keys(Schema& schema) {
  schema.directory("root");
  schema.string_list("index", {"index.html"}, check_index_name);
  schema.boolean("gzip_static", false);
  // The layer's own errors (400, 408, 413, 414, 431, 500) and the handler's.
  schema.string_table("error_page", 400, 599, check_error_page);
  schema.checked_string("expires", "off", check_expires);
  schema.checked_string("cache_control", "", check_cache_control);
}

StaticOptions static_options_of(const Listener& listener) {
  StaticOptions o;
  o.root = listener.string("root");
  o.index = listener.string_list("index");
  o.gzip_static = listener.boolean("gzip_static");
  for (const auto& [status, path] : listener.string_table("error_page")) {
    std::string normalized;
    normalize_path(path, &normalized);  // checked by the loader
    o.error_pages.emplace_back(static_cast<int>(status), std::move(normalized));
  }
  std::string error;
  o.expires = parse_expires(listener.string("expires"), &error).value_or(Expires{});
  o.cache_control = listener.string("cache_control");
  o.loop = listener.worker().loop();
  return o;
}

}  // namespace preforkd
