// Request path -> file under the document root; every escape route is refused here.
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
int status_for_errno(int err) { return (err == EACCES || err == EPERM) ? 403 : 404; }

std::string_view without_trailing_slashes(std::string_view root) {
  while (!root.empty() && root.back() == '/') root.remove_suffix(1);  // "/" -> ""
  return root;
}

bool contained(std::string_view base, std::string_view p) {
  if (base.empty()) return true;  // root is "/"
  if (p.size() < base.size() || p.compare(0, base.size(), base) != 0) return false;
  return p.size() == base.size() || p[base.size()] == '/';
}

// realpath + containment + stat: the checks every candidate file goes through.
// *st is the file's; *real its canonical path.
int check_candidate(std::string_view base, const std::string& mapped, char* real, struct stat* st) {
  if (::realpath(mapped.c_str(), real) == nullptr) return status_for_errno(errno);
  if (!contained(base, real)) return 403;
  if (::stat(real, st) != 0) return status_for_errno(errno);
  return 200;
}

bool is_unreserved_or_path_char(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::strchr("-._~!$&'()*+,;=:@/", c) != nullptr && c != '\0';
}

}  // namespace

bool percent_decode(std::string_view in, std::string* out) {
  out->clear();
  out->reserve(in.size());
  return percent_decode_append(in, out);
}

bool is_normalized(std::string_view path) {
  if (path.empty() || path.front() != '/') return false;
  // Segment by segment: none empty (except after the last '/'), none "." or "..",
  // no escape to decode.
  std::size_t seg = 1;
  for (std::size_t i = 1; i <= path.size(); ++i) {
    if (i < path.size() && path[i] != '/') {
      if (path[i] == '%' || path[i] == '\0') return false;
      continue;
    }
    std::size_t len = i - seg;
    if (len == 0 && i < path.size()) return false;  // "//"
    if (len == 1 && path[seg] == '.') return false;
    if (len == 2 && path[seg] == '.' && path[seg + 1] == '.') return false;
    seg = i + 1;
  }
  return true;
}

int normalize_path(std::string_view path, std::string* out) {
  out->clear();
  if (path.empty() || path.front() != '/') return 400;
  if (!percent_decode_append(path, out)) return 400;
  if (out->find('\0') != std::string::npos) return 400;
  std::string& buf = *out;
  // A trailing "/" (or "/.") must keep meaning "directory" so that "/file.txt/"
  // fails with ENOTDIR instead of silently serving the file.
  const bool want_dir = buf.back() == '/' || (buf.size() >= 2 && buf.compare(buf.size() - 2, 2, "/.") == 0);
  // Segments are checked after decoding, so "%2e%2e" and "..%2f" are caught, and
  // "%2f" acts as a separator. The write cursor never overtakes the read cursor:
  // each kept segment consumes its own leading '/'.
  std::size_t r = 0, w = 0;
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
    if (len == 2 && buf[seg] == '.' && buf[seg + 1] == '.') return 403;
    buf[w++] = '/';
    std::memmove(&buf[w], &buf[seg], len);
    w += len;
  }
  buf.resize(w);
  if (w == 0 || want_dir) buf.push_back('/');  // the root itself, or a directory
  return 200;
}

ResolvedPath resolve_mapped_file(std::string_view root, std::string mapped) {
  std::string_view base = without_trailing_slashes(root);
  char real[PATH_MAX];
  struct stat st {};
  if (int status = check_candidate(base, mapped, real, &st); status != 200) return {status, {}, {}};
  if (!S_ISREG(st.st_mode)) return {403, {}, {}};
  return {200, real, std::move(mapped)};
}

ResolvedPath resolve_normalized_path(std::string_view root, std::string_view path,
                                     const std::vector<std::string>& index) {
  // A misconfigured (relative or empty) root must not turn into "relative to the
  // worker's cwd"; fail closed.
  if (root.empty() || root.front() != '/') return {403, {}, {}};
  if (path.empty() || path.front() != '/') return {400, {}, {}};
  std::string_view base = without_trailing_slashes(root);
  std::string mapped;
  mapped.reserve(base.size() + path.size() + sizeof("/index.html"));
  mapped.append(base);
  mapped.append(path);

  char real[PATH_MAX];
  struct stat st {};
  if (int status = check_candidate(base, mapped, real, &st); status != 200) return {status, {}, {}};
  if (S_ISDIR(st.st_mode)) {
    // Relative links in the index page resolve against the directory only if the
    // URL ends in '/': say where it is (nginx does the same).
    if (path.back() != '/') return {301, {}, {}};
    // Index names are tried under the directory as requested (not its realpath),
    // each with the same checks, since an index may itself be a symlink.
    const std::size_t dir_length = mapped.size();
    int first_failure = 404;
    for (const std::string& name : index) {
      mapped.resize(dir_length);
      mapped.append(name);
      int status = check_candidate(base, mapped, real, &st);
      if (status == 200) break;
      // A missing index is the next name's turn; anything else (an escaping
      // symlink) is remembered in case no name is found.
      if (status != 404 && first_failure == 404) first_failure = status;
      if (&name == &index.back()) return {first_failure, {}, {}};
    }
    if (index.empty()) return {404, {}, {}};
  }
  // It exists but is a directory (e.g. an "index.html/" directory), FIFO, socket
  // or device: refuse rather than 404, and never hand a FIFO to a worker that
  // would block opening it.
  if (!S_ISREG(st.st_mode)) return {403, {}, {}};
  return {200, real, std::move(mapped)};
}

ResolvedPath resolve_static_path(std::string_view root, std::string_view target) {
  if (root.empty() || root.front() != '/') return {403, {}, {}};
  std::string normalized;
  int status = normalize_path(target.substr(0, target.find_first_of("?#")), &normalized);
  if (status != 200) return {status, {}, {}};
  static const std::vector<std::string> kIndex = {"index.html"};
  return resolve_normalized_path(root, normalized, kIndex);
}

std::string percent_encode_path(std::string_view path) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(path.size());
  for (char ch : path) {
    auto c = static_cast<unsigned char>(ch);
    if (is_unreserved_or_path_char(c)) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

}  // namespace preforkd
