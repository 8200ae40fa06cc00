// Maps a request path to a file under the document root, refusing every escape.
// Two steps: normalize_path (pure: percent-decoding once, "//" and "." collapsed,
// ".." refused), whose result is also the file cache's key, so that "/a", "//a"
// and "/%61" are one entry; then resolve_static_path (the filesystem: realpath,
// containment in the root, index files, directories).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace preforkd {

// path: the request target's path as sent (no query or fragment), "/a%20b/c.html".
// Percent-decodes once and normalises: empty and "." segments collapse ("//a/./b"
// -> "/a/b"), a trailing "/" (or "/.") stays, since it means "directory". Returns
// 200 with the result in *out; 403 for a ".." segment (plain or encoded); 400 for a
// malformed escape, a decoded NUL, or a path not starting with '/'.
int normalize_path(std::string_view path, std::string* out);

// True when normalize_path(path) would return path itself (nothing to decode or
// collapse): the common case, which a cache lookup can then use without a copy.
bool is_normalized(std::string_view path);

struct ResolvedPath {
  // 200: path is usable; 301: a directory named without its trailing slash (the
  // client is to be redirected to the normalised path + "/"); else 400, 403, 404.
  int status = 0;
  std::string path;    // canonical absolute path of a regular file when status == 200
  std::string mapped;  // root + normalised path (+ the index name), before realpath: where
                       // a precompressed sibling "<mapped>.gz" would be
};

// root: canonical absolute path of the document root. path: normalised
// (normalize_path). A path whose realpath() leaves root (symlinks) is 403, as is a
// file that is not regular (a FIFO, a device, a directory named "index.html"). A
// directory with the trailing slash maps to the first of `index` that exists (404
// if none); without it, 301. A missing file is 404.
ResolvedPath resolve_normalized_path(std::string_view root, std::string_view path,
                                     const std::vector<std::string>& index);

// The whole mapping from a target as received ("/a%20b/c.html?x=1", query and
// fragment ignored), with index.html as the only index file.
ResolvedPath resolve_static_path(std::string_view root, std::string_view target);

// A mapped file name (a sibling of a resolved file): realpath, containment in root,
// a regular file. 200 with the canonical path, or 403/404.
ResolvedPath resolve_mapped_file(std::string_view root, std::string mapped);

// Percent-decodes; false on a malformed escape ("%G1", "%4").
bool percent_decode(std::string_view in, std::string* out);

// A normalised path as a URI path again (for a Location header): every byte but
// unreserved characters, sub-delims, ':', '@' and '/' is percent-encoded.
std::string percent_encode_path(std::string_view path);

}  // namespace preforkd
