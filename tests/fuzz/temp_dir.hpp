// A directory under /tmp that lives as long as the fuzzing process: the targets
// need real files (a document root, a config directory), created once per
// process and removed at exit.
#pragma once

#include <string>

namespace preforkd::fuzz {

class TempDir {
 public:
  TempDir();  // throws std::runtime_error if it cannot be created
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  // Canonical absolute path.
  const std::string& path() const { return path_; }
  // Creates (or truncates) path()/relative with the given contents; parents must exist.
  void write(const std::string& relative, const std::string& contents) const;
  void mkdir(const std::string& relative) const;

 private:
  std::string path_;
};

}  // namespace preforkd::fuzz
