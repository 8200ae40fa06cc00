// TempDir: mkdtemp, a few files, and recursive removal at exit.
#include "tests/fuzz/temp_dir.hpp"

#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace preforkd::fuzz {

TempDir::TempDir() {
  char tmpl[] = "/tmp/preforkd-fuzz-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
  char canonical[PATH_MAX];
  if (realpath(tmpl, canonical) == nullptr) throw std::runtime_error(std::string("realpath: ") + std::strerror(errno));
  path_ = canonical;
}

TempDir::~TempDir() {
  auto remove_one = [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p); };
  if (nftw(path_.c_str(), remove_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
    std::fprintf(stderr, "fuzz: cannot remove %s: %s\n", path_.c_str(), std::strerror(errno));
}

void TempDir::write(const std::string& relative, const std::string& contents) const {
  std::string full = path_ + "/" + relative;
  FILE* f = std::fopen(full.c_str(), "wb");
  if (f == nullptr) throw std::runtime_error("fopen " + full + ": " + std::strerror(errno));
  bool ok = std::fwrite(contents.data(), 1, contents.size(), f) == contents.size();
  ok = std::fclose(f) == 0 && ok;
  if (!ok) throw std::runtime_error("write " + full + ": " + std::strerror(errno));
}

void TempDir::mkdir(const std::string& relative) const {
  std::string full = path_ + "/" + relative;
  if (::mkdir(full.c_str(), 0755) != 0) throw std::runtime_error("mkdir " + full + ": " + std::strerror(errno));
}

}  // namespace preforkd::fuzz
