// The static files an http listener serves, resolved once and reused, like nginx's
// open_file_cache. Resolving a request path safely costs a realpath() (one
// readlink per path component), a stat and, to send the file, open + fstat +
// pread + close: about ten syscalls per request, which the profile showed as the
// largest user-space cost. A cached entry holds the canonical path, the stat
// result, the ready-made header fields and, for small files, the contents; it is
// trusted for kValidMs and then resolved again from scratch (so a symlink swapped
// to point outside the root stops being served within that time).
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

namespace preforkd {

struct StaticFile {
  std::string path;          // canonical absolute path of a regular file
  struct stat st {};
  std::string last_modified;  // HTTP date of st.st_mtime
  // "Content-Type: ...\r\nLast-Modified: ...\r\n": the response's own header lines
  // (the HTTP layer adds Content-Length from the body).
  std::string headers;
  // The whole file when it is small enough to keep; null for large files, which
  // are opened and streamed per request.
  std::shared_ptr<const std::string> body;
};

struct FileLookup {
  int status = 0;  // 200, or the 400/403/404 of resolve_static_path
  std::shared_ptr<const StaticFile> file;  // set when status == 200
};

class FileCache {
 public:
  static constexpr std::uint64_t kValidMs = 1000;
  static constexpr std::size_t kMaxEntries = 1024;
  static constexpr std::size_t kMaxBodyBytes = 256 * 1024;         // per file
  static constexpr std::size_t kMaxTotalBodyBytes = 32 * 1024 * 1024;  // per cache

  explicit FileCache(std::string root) : root_(std::move(root)) {}

  // The file for a request target ("/a/b.html?q"). Errors are not cached: a
  // missing file costs a resolve each time, as without the cache, and a file that
  // appears is served at once. now_ms: any monotonic millisecond clock.
  FileLookup lookup(std::string_view target, std::uint64_t now_ms);

  std::size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::shared_ptr<const StaticFile> file;
    std::uint64_t checked_ms = 0;
  };
  FileLookup load(std::string_view target, const Entry* previous);

  // Transparent, so a lookup by the request's string_view allocates nothing.
  struct PathHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::string root_;
  std::unordered_map<std::string, Entry, PathHash, std::equal_to<>> entries_;
  std::size_t body_bytes_ = 0;
};

// The HTTP status for an open(2) of a resolved file that failed with `error`: out
// of fds is our trouble, not a missing file (503, the client may retry).
int status_for_open_error(int error);

// Milliseconds from CLOCK_MONOTONIC_COARSE: a vDSO read, cheap enough per request.
std::uint64_t coarse_now_ms();

}  // namespace preforkd
