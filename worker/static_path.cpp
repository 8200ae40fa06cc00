// Request-target → file under the document root; every escape route is refused here.
#include "worker/static_path.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

namespace preforkd {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Appends rather than assigns so the resolver can decode straight after the root
// in a single buffer.
bool percent_decode_append(std::string_view in, std::string* out) {
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c != '%') {
      out->push_back(c);
      continue;
    }
    if (in.size() - i < 3) return false;
    int hi = hex_value(in[i + 1]);
    int lo = hex_value(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

// Errors after a successful decode: a name that cannot exist is "not found";
// only a permission problem says "forbidden". Anything unexpected (EIO, ENOMEM)
// is reported as 404 rather than leaking that the path is special.
int status_for_errno(int err) {
  return (err == EACCES || err == EPERM) ? 403 : 404;
}

bool contained(std::string_view base, std::string_view p) {
  if (base.empty()) return true;  // root is "/"
  if (p.size() < base.size() || p.compare(0, base.size(), base) != 0) return false;
  return p.size() == base.size() || p[base.size()] == '/';
}

}  // namespace

bool percent_decode(std::string_view in, std::string* out) {
  out->clear();
  out->reserve(in.size());
  return percent_decode_append(in, out);
}

ResolvedPath resolve_static_path(std::string_view root, std::string_view target) {
  // A misconfigured (relative or empty) root must not turn into "relative to the
  // worker's cwd"; fail closed.
  if (root.empty() || root.front() != '/') return {403, {}};
  std::string_view base = root;
  while (!base.empty() && base.back() == '/') base.remove_suffix(1);  // "/" → ""

  if (target.empty() || target.front() != '/') return {400, {}};
  target = target.substr(0, target.find_first_of("?#"));

  // One buffer for the whole job: root, then the decoded target normalised in
  // place, then (reusing its capacity) the canonical result.
  std::string buf;
  buf.reserve(base.size() + target.size() + sizeof("/index.html"));
  buf.append(base);
  const std::size_t start = buf.size();
  if (!percent_decode_append(target, &buf)) return {400, {}};
  std::string_view decoded(buf.data() + start, buf.size() - start);
  if (decoded.find('\0') != std::string_view::npos) return {400, {}};

  // A trailing "/" (or "/.") must keep meaning "directory" so that "/file.txt/"
  // fails with ENOTDIR instead of silently serving the file.
  const bool want_dir = decoded.back() == '/' ||
                        (decoded.size() >= 2 && decoded.substr(decoded.size() - 2) == "/.");

  // Segments are checked after decoding, so "%2e%2e" and "..%2f" are caught, and
  // "%2f" acts as a separator. The write cursor never overtakes the read cursor:
  // each kept segment consumes its own leading '/'.
  std::size_t r = start;
  std::size_t w = start;
  const std::size_t n = buf.size();
  while (r < n) {
    if (buf[r] == '/') {
      ++r;
      continue;
    }
    const std::size_t seg = r;
    while (r < n && buf[r] != '/') ++r;
    const std::size_t len = r - seg;
    if (len == 1 && buf[seg] == '.') continue;
    if (len == 2 && buf[seg] == '.' && buf[seg + 1] == '.') return {403, {}};
    buf[w++] = '/';
    std::memmove(&buf[w], &buf[seg], len);
    w += len;
  }
  buf.resize(w);
  if (w == start) {
    buf.push_back('/');  // the root itself; also turns "" into "/" when root is "/"
  } else if (want_dir) {
    buf.push_back('/');
  }

  char real[PATH_MAX];
  if (::realpath(buf.c_str(), real) == nullptr) return {status_for_errno(errno), {}};
  if (!contained(base, real)) return {403, {}};

  struct stat st;
  if (::stat(real, &st) != 0) return {status_for_errno(errno), {}};

  if (S_ISDIR(st.st_mode)) {
    buf.assign(real);
    if (buf.back() != '/') buf.push_back('/');
    buf.append("index.html");
    // index.html may itself be a symlink, so it gets the same treatment.
    if (::realpath(buf.c_str(), real) == nullptr) return {status_for_errno(errno), {}};
    if (!contained(base, real)) return {403, {}};
    if (::stat(real, &st) != 0) return {status_for_errno(errno), {}};
  }

  // It exists but is a directory (e.g. an "index.html/" directory), FIFO, socket
  // or device: refuse rather than 404, and never hand a FIFO to a worker that
  // would block opening it.
  if (!S_ISREG(st.st_mode)) return {403, {}};

  buf.assign(real);
  return {200, std::move(buf)};
}

}  // namespace preforkd
