// Extension → Content-Type lookup for static files, without allocating per request.
#include "worker/mime_types.hpp"

#include <algorithm>
#include <array>
#include <cstddef>

namespace preforkd {
namespace {

struct MimeEntry {
  std::string_view ext;  // lower case, no dot
  std::string_view type;
};

constexpr std::string_view kOctetStream = "application/octet-stream";

// Sorted by ext for binary search (checked below). Text types carry a charset so
// browsers do not guess one. js follows RFC 9239 (text/javascript) rather than
// the older application/javascript.
constexpr std::array<MimeEntry, 33> kTable{{
    {"avif", "image/avif"},
    {"css", "text/css; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"},
    {"gif", "image/gif"},
    {"gz", "application/gzip"},
    {"htm", "text/html; charset=utf-8"},
    {"html", "text/html; charset=utf-8"},
    {"ico", "image/x-icon"},
    {"jpeg", "image/jpeg"},
    {"jpg", "image/jpeg"},
    {"js", "text/javascript; charset=utf-8"},
    {"json", "application/json; charset=utf-8"},
    {"map", "application/json; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"mp3", "audio/mpeg"},
    {"mp4", "video/mp4"},
    {"ogg", "audio/ogg"},
    {"otf", "font/otf"},
    {"pdf", "application/pdf"},
    {"png", "image/png"},
    {"svg", "image/svg+xml"},
    {"tar", "application/x-tar"},
    {"ttf", "font/ttf"},
    {"txt", "text/plain; charset=utf-8"},
    {"wasm", "application/wasm"},
    {"wav", "audio/wav"},
    {"webm", "video/webm"},
    {"webp", "image/webp"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"xml", "text/xml; charset=utf-8"},
    {"zip", "application/zip"},
}};

constexpr std::size_t kMaxExt = 8;  // longer than any entry, so longer means unknown

// The lookup lowercases into a kMaxExt buffer and binary-searches, so the table
// must be sorted, unique, lower case and short enough.
constexpr bool table_well_formed() {
  for (std::size_t i = 0; i < kTable.size(); ++i) {
    const std::string_view ext = kTable[i].ext;
    if (ext.empty() || ext.size() > kMaxExt) return false;
    for (char c : ext) {
      if (c >= 'A' && c <= 'Z') return false;
    }
    if (i > 0 && !(kTable[i - 1].ext < ext)) return false;
  }
  return true;
}
static_assert(table_well_formed(), "kTable must be sorted, unique, lower case and short");

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

std::string_view mime_type_for(std::string_view path) {
  // Only the last segment counts: "/v1.2/README" has no extension.
  const std::size_t slash = path.rfind('/');
  if (slash != std::string_view::npos) path.remove_prefix(slash + 1);
  const std::size_t dot = path.rfind('.');
  if (dot == std::string_view::npos) return kOctetStream;
  const std::string_view ext = path.substr(dot + 1);
  if (ext.empty() || ext.size() > kMaxExt) return kOctetStream;

  char lower[kMaxExt];
  for (std::size_t i = 0; i < ext.size(); ++i) lower[i] = ascii_lower(ext[i]);
  const std::string_view key(lower, ext.size());

  const auto it = std::lower_bound(kTable.begin(), kTable.end(), key,
                                   [](const MimeEntry& e, std::string_view k) { return e.ext < k; });
  if (it == kTable.end() || it->ext != key) return kOctetStream;
  return it->type;
}

}  // namespace preforkd
