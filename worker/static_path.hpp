// Maps a request target to a file under the document root, refusing every escape.
#pragma once

#include <string>
#include <string_view>

namespace preforkd {

struct ResolvedPath {
  int status = 0;      // 200 when path is usable, else 400, 403 or 404
  std::string path;    // canonical absolute path of a regular file when status == 200
};

// root: canonical absolute path of the document root (no trailing slash).
// target: the request-target as received ("/a%20b/c.html?x=1"); the query and
// fragment are ignored. Percent-decoding happens once; a decoded NUL, a ".."
// segment (plain or encoded), or a path whose realpath() leaves root (symlinks)
// is refused with 403 (a decoded NUL or malformed escape with 400). "/" and directories map to their index.html (404 if none).
// A missing file is 404; a target not starting with '/' is 400.
ResolvedPath resolve_static_path(std::string_view root, std::string_view target);

// Percent-decodes; false on a malformed escape ("%G1", "%4").
bool percent_decode(std::string_view in, std::string* out);

}  // namespace preforkd
