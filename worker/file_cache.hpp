// The static files an http listener serves, resolved once and reused, like nginx's
// open_file_cache. Resolving a request path safely costs a realpath() (one
// readlink per path component), a stat and, to send the file, open + fstat + read
// + close: about ten syscalls per request. A cached entry holds the canonical
// path, the stat result, the ready-made header lines and either the contents (a
// small file: answered with one writev from memory) or the open file (a large one:
// answered with sendfile from the fd kept open here). It is trusted for kValidMs
// and then resolved again from scratch: a changed file is served within that
// time, and a symlink swapped to point outside the root stops being served.
//
// The key is the normalised path (static_path.hpp), so "/a", "//a" and "/%61"
// are one entry.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace preforkd {

// A file kept open for sendfile; closed when the last response using it is sent
// and the cache has let go of it.
struct OpenFile {
  int fd = -1;
  explicit OpenFile(int f) : fd(f) {}
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;
  ~OpenFile();
};

struct StaticFile : std::enable_shared_from_this<StaticFile> {
  std::string path;  // canonical absolute path of a regular file
  struct stat st {};
  std::string last_modified;  // HTTP date of st.st_mtime
  std::string etag;           // nginx's: "\"<mtime hex>-<size hex>\""
  std::string_view content_type;
  // Header lines for the answers (the HTTP layer adds Content-Length):
  //   headers:       200: Content-Type, Content-Encoding (a .gz sibling),
  //                  Last-Modified, ETag, Vary (if there is a sibling),
  //                  Accept-Ranges, the listener's static cache headers
  //   range_headers: 206: the same without Accept-Ranges (Content-Range is per request)
  //   not_modified:  304: Last-Modified, ETag, Vary, cache headers
  std::string headers;
  std::string range_headers;
  std::string not_modified;
  // The contents, when small enough to keep; else the open file.
  std::shared_ptr<const std::string> body;
  std::shared_ptr<const OpenFile> open;
  // With gzip_static: the precompressed "<file>.gz", if there is one.
  std::shared_ptr<const StaticFile> gzip;
  std::uint64_t size() const { return static_cast<std::uint64_t>(st.st_size); }
};

struct FileLookup {
  int status = 0;  // 200, or the 301/400/403/404/503 of resolving the path
  // Set when status == 200. Valid until the next lookup on the same cache: what a
  // response needs beyond that (the body, the open file) it holds by shared_ptr.
  const StaticFile* file = nullptr;
};

struct FileCacheOptions {
  std::vector<std::string> index = {"index.html"};
  bool gzip_static = false;
  // Lines added to every file answer (200, 206, 304): the listener's Cache-Control
  // and Expires, when they do not change with the time.
  std::string cache_headers;
  // Files up to this size are kept in memory; larger ones are kept open.
  std::size_t max_body_bytes = 16 * 1024;
};

class FileCache {
 public:
  static constexpr std::uint64_t kValidMs = 1000;
  static constexpr std::size_t kMaxEntries = 1024;
  static constexpr std::size_t kMaxTotalBodyBytes = 32 * 1024 * 1024;  // per cache
  static constexpr std::size_t kMaxOpenFiles = 256;                    // per cache
  // An entry nobody asked for this long is dropped (closing its file), at the
  // next miss or revalidation: a deleted file must not stay open forever.
  static constexpr std::uint64_t kInactiveMs = 60 * 1000;

  explicit FileCache(std::string root, FileCacheOptions options = {});

  // The file for a request path ("/a/b.html", the target without query; still
  // percent-encoded). Errors are not cached: a missing file costs a resolve each
  // time, as without the cache, and a file that appears is served at once.
  // now_ms: any monotonic millisecond clock.
  FileLookup lookup(std::string_view path, std::uint64_t now_ms);

  std::size_t size() const { return entries_.size(); }
  std::size_t open_files() const { return open_files_; }
  const FileCacheOptions& options() const { return options_; }

 private:
  struct Entry {
    std::shared_ptr<const StaticFile> file;
    std::uint64_t checked_ms = 0;
  };
  // Resolves, opens and stats `key` (normalised); returns the previous entry's
  // file again if nothing changed.
  std::shared_ptr<const StaticFile> load(std::string_view key, const Entry* previous, int* status);
  std::shared_ptr<StaticFile> load_file(const std::string& canonical, int fd, const struct stat& st, int* status);
  void finish_headers(StaticFile& file, std::string_view content_type, bool gzip_encoded, bool vary) const;
  void forget(const Entry& entry);
  void sweep(std::uint64_t now_ms);

  // Transparent, so a lookup by the request's string_view allocates nothing.
  struct PathHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::string root_;
  FileCacheOptions options_;
  std::unordered_map<std::string, Entry, PathHash, std::equal_to<>> entries_;
  std::size_t body_bytes_ = 0;
  std::size_t open_files_ = 0;
  std::uint64_t swept_ms_ = 0;
  // The last hit: clients fetch one path again and again (a keep-alive benchmark,
  // a page's assets), and comparing the path costs less than hashing it.
  std::string last_key_;
  Entry* last_ = nullptr;
  std::string scratch_;  // the normalised key of a path that needed normalising
  // Answered but not kept (too big for the cache's bounds): held until the next miss.
  std::vector<std::shared_ptr<const StaticFile>> retired_;
};

// The HTTP status for an open(2) of a resolved file that failed with `error`: out
// of fds is our trouble, not a missing file (503, the client may retry).
int status_for_open_error(int error);

// Milliseconds from CLOCK_MONOTONIC_COARSE: a vDSO read, cheap enough per request.
std::uint64_t coarse_now_ms();

// nginx's ETag of a file: "\"<mtime hex>-<size hex>\"".
std::string etag_of(const struct stat& st);

}  // namespace preforkd
