// Static file cache; see file_cache.hpp for why it exists.
#include "worker/file_cache.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
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

}  // namespace

int status_for_open_error(int error) {
  if (error == EACCES) return 403;
  return (error == EMFILE || error == ENFILE) ? 503 : 404;
}

std::uint64_t coarse_now_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000 + static_cast<std::uint64_t>(ts.tv_nsec) / 1000000;
}

FileLookup FileCache::lookup(std::string_view target, std::uint64_t now_ms) {
  // The query and fragment never change which file is served; keying without them
  // keeps "/x?1", "/x?2", ... from filling the cache.
  std::string_view path = target.substr(0, target.find_first_of("?#"));
  auto it = entries_.find(path);
  if (it != entries_.end() && now_ms - it->second.checked_ms < kValidMs) return {200, it->second.file};

  FileLookup found = load(target, it == entries_.end() ? nullptr : &it->second);
  if (it != entries_.end()) {
    if (it->second.file->body) body_bytes_ -= it->second.file->body->size();
    entries_.erase(it);
  }
  if (found.status != 200) return found;
  std::size_t body = found.file->body ? found.file->body->size() : 0;
  // Full: start over rather than track recency; the working set refills within
  // a second and the bound is what matters.
  if (entries_.size() >= kMaxEntries || body_bytes_ + body > kMaxTotalBodyBytes) {
    entries_.clear();
    body_bytes_ = 0;
  }
  if (body_bytes_ + body <= kMaxTotalBodyBytes) {
    entries_.emplace(std::string(path), Entry{found.file, now_ms});
    body_bytes_ += body;
  }
  return found;
}

FileLookup FileCache::load(std::string_view target, const Entry* previous) {
  ResolvedPath resolved = resolve_static_path(root_, target);
  if (resolved.status != 200) return {resolved.status, nullptr};
  int fd = ::open(resolved.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {status_for_open_error(errno), nullptr};
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return {404, nullptr};
  }
  // Unchanged since the last check: keep the entry (and its body) as it is.
  if (previous && previous->file->path == resolved.path && same_file(previous->file->st, st)) {
    ::close(fd);
    return {200, previous->file};
  }
  auto file = std::make_shared<StaticFile>();
  file->path = std::move(resolved.path);
  file->st = st;
  file->last_modified = format_http_date(st.st_mtime);
  auto size = static_cast<std::size_t>(st.st_size);
  file->headers = "Content-Type: ";
  file->headers += mime_type_for(file->path);
  file->headers += "\r\nLast-Modified: " + file->last_modified + "\r\n";
  if (size <= kMaxBodyBytes) {
    auto body = std::make_shared<std::string>();
    bool ok = read_whole(fd, body.get(), size);
    ::close(fd);
    if (!ok) return {404, nullptr};  // it shrank under us: try again next request
    file->body = std::move(body);
  } else {
    ::close(fd);
  }
  return {200, std::move(file)};
}

}  // namespace preforkd
