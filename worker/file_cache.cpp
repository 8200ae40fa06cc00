// Static file cache; see file_cache.hpp for why it exists.
#include "worker/file_cache.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <ctime>

#include "worker/http_date.hpp"
#include "worker/mime_types.hpp"
#include "worker/static_path.hpp"

namespace preforkd {
namespace {

bool read_whole(int fd, std::string* out, std::size_t size) {
  out->resize(size);
  std::size_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(fd, out->data() + done, size - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;  // error, or the file shrank while we read it
    done += static_cast<std::size_t>(n);
  }
  return true;
}

bool same_file(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino && a.st_size == b.st_size &&
         a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec;
}

// open + fstat of a resolved path: the fd and stat that the answer will use, so
// that the length promised is the length of what is sent.
int open_regular(const std::string& path, struct stat* st, int* status) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    *status = status_for_open_error(errno);
    return -1;
  }
  if (::fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
    ::close(fd);
    *status = 404;
    return -1;
  }
  *status = 200;
  return fd;
}

std::size_t body_bytes_of(const StaticFile& f) {
  return (f.body ? f.body->size() : 0) + (f.gzip && f.gzip->body ? f.gzip->body->size() : 0);
}
std::size_t open_files_of(const StaticFile& f) { return (f.open ? 1 : 0) + (f.gzip && f.gzip->open ? 1 : 0); }

}  // namespace

OpenFile::~OpenFile() {
  if (fd >= 0) ::close(fd);
}

int status_for_open_error(int error) {
  if (error == EACCES) return 403;
  return (error == EMFILE || error == ENFILE) ? 503 : 404;
}

std::uint64_t coarse_now_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000 + static_cast<std::uint64_t>(ts.tv_nsec) / 1000000;
}

std::string etag_of(const struct stat& st) {
  char text[48];
  int n = std::snprintf(text, sizeof text, "\"%" PRIx64 "-%" PRIx64 "\"", static_cast<std::uint64_t>(st.st_mtime),
                        static_cast<std::uint64_t>(st.st_size));
  return std::string(text, static_cast<std::size_t>(n));
}

FileCache::FileCache(std::string root, FileCacheOptions options)
    : root_(std::move(root)), options_(std::move(options)) {}

FileLookup FileCache::lookup(std::string_view path, std::uint64_t now_ms) {
  if (last_ != nullptr && path == last_key_ && now_ms - last_->checked_ms < kValidMs) return {200, last_->file.get()};
  std::string_view key = path;
  if (!is_normalized(path)) {
    int status = normalize_path(path, &scratch_);
    if (status != 200) return {status, nullptr};
    key = scratch_;
  }
  auto it = entries_.find(key);
  if (it != entries_.end() && now_ms - it->second.checked_ms < kValidMs) {
    last_key_.assign(path);
    last_ = &it->second;
    return {200, it->second.file.get()};
  }
  last_ = nullptr;  // the map changes below
  sweep(now_ms);
  it = entries_.find(key);  // the sweep may have dropped it
  int status = 0;
  std::shared_ptr<const StaticFile> file = load(key, it == entries_.end() ? nullptr : &it->second, &status);
  if (it != entries_.end()) {
    forget(it->second);
    entries_.erase(it);
  }
  if (status != 200) return {status, nullptr};
  std::size_t body = body_bytes_of(*file), open = open_files_of(*file);
  // Full: start over rather than track recency; the working set refills within
  // a second and the bound is what matters. (Answers in flight hold what they send.)
  if (entries_.size() >= kMaxEntries || body_bytes_ + body > kMaxTotalBodyBytes ||
      open_files_ + open > kMaxOpenFiles) {
    entries_.clear();
    body_bytes_ = 0;
    open_files_ = 0;
  }
  // An entry too big for the cache on its own is served, not kept.
  if (body > kMaxTotalBodyBytes || open > kMaxOpenFiles) {
    retired_.push_back(file);  // alive until the next lookup, as promised
    return {200, file.get()};
  }
  auto [at, inserted] = entries_.emplace(std::string(key), Entry{file, now_ms});
  (void)inserted;
  body_bytes_ += body;
  open_files_ += open;
  last_key_.assign(path);
  last_ = &at->second;
  return {200, at->second.file.get()};
}

void FileCache::forget(const Entry& entry) {
  body_bytes_ -= body_bytes_of(*entry.file);
  open_files_ -= open_files_of(*entry.file);
}

void FileCache::sweep(std::uint64_t now_ms) {
  retired_.clear();
  if (now_ms - swept_ms_ < kInactiveMs / 6) return;
  swept_ms_ = now_ms;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (now_ms - it->second.checked_ms >= kInactiveMs) {
      forget(it->second);
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
}

std::shared_ptr<const StaticFile> FileCache::load(std::string_view key, const Entry* previous, int* status) {
  ResolvedPath resolved = resolve_normalized_path(root_, key, options_.index);
  if (resolved.status != 200) {
    *status = resolved.status;
    return nullptr;
  }
  struct stat st {};
  int fd = open_regular(resolved.path, &st, status);
  if (fd < 0) return nullptr;

  // The precompressed sibling, looked up again at every revalidation: it may
  // have appeared, changed or gone while the file itself did not.
  int gz_fd = -1;
  struct stat gz_st {};
  std::string gz_path;
  if (options_.gzip_static) {
    ResolvedPath gz = resolve_mapped_file(root_, resolved.mapped + ".gz");
    int gz_status = 0;
    if (gz.status == 200) gz_fd = open_regular(gz.path, &gz_st, &gz_status);
    if (gz_fd >= 0) gz_path = std::move(gz.path);
  }

  // Unchanged since the last check: keep the entry (its body, its open file).
  const StaticFile* before = previous ? previous->file.get() : nullptr;
  if (before && before->path == resolved.path && same_file(before->st, st) &&
      (before->gzip ? gz_fd >= 0 && before->gzip->path == gz_path && same_file(before->gzip->st, gz_st) : gz_fd < 0)) {
    ::close(fd);
    if (gz_fd >= 0) ::close(gz_fd);
    *status = 200;
    return previous->file;
  }

  std::shared_ptr<StaticFile> file = load_file(resolved.path, fd, st, status);
  if (!file) {
    if (gz_fd >= 0) ::close(gz_fd);
    return nullptr;
  }
  std::string_view type = mime_type_for(resolved.path);
  if (gz_fd >= 0) {
    int gz_status = 0;
    std::shared_ptr<StaticFile> gz = load_file(gz_path, gz_fd, gz_st, &gz_status);
    // A sibling that cannot be read is as good as none: the plain file is served.
    if (gz) {
      finish_headers(*gz, type, /*gzip_encoded=*/true, /*vary=*/true);
      file->gzip = std::move(gz);
    }
  }
  finish_headers(*file, type, /*gzip_encoded=*/false, /*vary=*/file->gzip != nullptr);
  return file;
}

// Takes fd: keeps it open in the entry (large file) or reads and closes it.
std::shared_ptr<StaticFile> FileCache::load_file(const std::string& canonical, int fd, const struct stat& st,
                                                 int* status) {
  auto file = std::make_shared<StaticFile>();
  file->path = canonical;
  file->st = st;
  auto size = static_cast<std::size_t>(st.st_size);
  if (size <= options_.max_body_bytes) {
    auto body = std::make_shared<std::string>();
    bool ok = read_whole(fd, body.get(), size);
    ::close(fd);
    if (!ok) {
      *status = 404;  // it shrank under us: try again next request
      return nullptr;
    }
    file->body = std::move(body);
  } else {
    file->open = std::make_shared<const OpenFile>(fd);
  }
  *status = 200;
  return file;
}

void FileCache::finish_headers(StaticFile& file, std::string_view content_type, bool gzip_encoded, bool vary) const {
  file.last_modified = format_http_date(file.st.st_mtime);
  file.etag = etag_of(file.st);
  file.content_type = content_type;
  std::string validators = "Last-Modified: " + file.last_modified + "\r\nETag: " + file.etag + "\r\n";
  if (vary) validators += "Vary: Accept-Encoding\r\n";
  std::string representation = "Content-Type: " + std::string(content_type) + "\r\n";
  if (gzip_encoded) representation += "Content-Encoding: gzip\r\n";
  file.range_headers = representation + validators + options_.cache_headers;
  file.headers = representation + validators + "Accept-Ranges: bytes\r\n" + options_.cache_headers;
  file.not_modified = validators + options_.cache_headers;
}

}  // namespace preforkd
