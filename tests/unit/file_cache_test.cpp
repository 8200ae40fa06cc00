// FileCache against a real temp tree: hits within the validity window, reloads
// after it, no caching of errors, bounds, and symlinks swapped to escape the root.
#include "worker/file_cache.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace preforkd {
namespace {

namespace fs = std::filesystem;

class FileCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = "/tmp/preforkd_cache_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    char real[PATH_MAX];
    ASSERT_NE(::realpath(tmpl.c_str(), real), nullptr);
    base_ = real;
    root_ = base_ + "/root";
    fs::create_directories(root_);
    fs::create_directories(base_ + "/outside");
    write(root_ + "/a.txt", "first");
    write(base_ + "/outside/secret.txt", "secret");
  }
  void TearDown() override { fs::remove_all(base_); }
  static void write(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
  }
  std::string base_, root_;
};

TEST_F(FileCacheTest, ServesContentsAndHeaders) {
  FileCache cache(root_);
  FileLookup found = cache.lookup("/a.txt", 0);
  ASSERT_EQ(found.status, 200);
  ASSERT_TRUE(found.file->body);
  EXPECT_EQ(*found.file->body, "first");
  EXPECT_EQ(found.file->path, root_ + "/a.txt");
  EXPECT_EQ(found.file->st.st_size, 5);
  EXPECT_NE(found.file->headers.find("Content-Type: text/plain"), std::string::npos) << found.file->headers;
  EXPECT_NE(found.file->headers.find("Last-Modified: "), std::string::npos) << found.file->headers;
  // Header lines only: Content-Length and the blank line are the HTTP layer's.
  EXPECT_EQ(found.file->headers.find("Content-Length"), std::string::npos) << found.file->headers;
  EXPECT_TRUE(found.file->headers.ends_with("\r\n") && !found.file->headers.ends_with("\r\n\r\n"));
}

TEST_F(FileCacheTest, HitsWithinTheWindowUnderEveryFormOfThePath) {
  FileCache cache(root_);
  auto first = cache.lookup("/a.txt", 1000).file;
  write(root_ + "/a.txt", "second!");
  for (const char* same : {"/a.txt", "//a.txt", "/%61.txt", "/./a.txt", "///.//%61%2etxt"}) {
    auto again = cache.lookup(same, 1000 + FileCache::kValidMs - 1);
    EXPECT_EQ(again.file, first) << same << ": the normalised path is the key";
  }
  EXPECT_EQ(cache.size(), 1u);
  auto later = cache.lookup("/a.txt", 1000 + FileCache::kValidMs);
  ASSERT_EQ(later.status, 200);
  EXPECT_EQ(*later.file->body, "second!") << "re-checked after the window";
}

TEST_F(FileCacheTest, AnUnchangedFileKeepsItsEntryAfterTheWindow) {
  FileCache cache(root_);
  auto first = cache.lookup("/a.txt", 0).file;
  EXPECT_EQ(cache.lookup("/a.txt", 10 * FileCache::kValidMs).file, first);
}

TEST_F(FileCacheTest, ErrorsAreNotCached) {
  FileCache cache(root_);
  EXPECT_EQ(cache.lookup("/new.txt", 0).status, 404);
  EXPECT_EQ(cache.size(), 0u);
  write(root_ + "/new.txt", "now here");
  EXPECT_EQ(cache.lookup("/new.txt", 1).status, 200) << "a file that appears is served at once";
  EXPECT_EQ(cache.lookup("/../outside/secret.txt", 2).status, 403);
}

TEST_F(FileCacheTest, ADeletedFileIsGoneAfterTheWindow) {
  FileCache cache(root_);
  ASSERT_EQ(cache.lookup("/a.txt", 0).status, 200);
  fs::remove(root_ + "/a.txt");
  EXPECT_EQ(cache.lookup("/a.txt", FileCache::kValidMs).status, 404);
  EXPECT_EQ(cache.size(), 0u);
}

TEST_F(FileCacheTest, ASymlinkSwappedToEscapeTheRootIsRefusedAfterTheWindow) {
  write(root_ + "/inside.txt", "inside");
  fs::create_symlink(root_ + "/inside.txt", root_ + "/link.txt");
  FileCache cache(root_);
  ASSERT_EQ(cache.lookup("/link.txt", 0).status, 200);
  fs::remove(root_ + "/link.txt");
  fs::create_symlink(base_ + "/outside/secret.txt", root_ + "/link.txt");
  EXPECT_EQ(cache.lookup("/link.txt", FileCache::kValidMs).status, 403);
}

TEST_F(FileCacheTest, LargeFilesKeepNoBody) {
  const std::size_t limit = FileCacheOptions{}.max_body_bytes;
  write(root_ + "/big.bin", std::string(limit + 1, 'x'));
  FileCache cache(root_);
  FileLookup found = cache.lookup("/big.bin", 0);
  ASSERT_EQ(found.status, 200);
  EXPECT_FALSE(found.file->body);
  ASSERT_TRUE(found.file->open) << "a large file is kept open for sendfile";
  EXPECT_GE(found.file->open->fd, 0);
  EXPECT_EQ(cache.open_files(), 1u);
  EXPECT_EQ(found.file->st.st_size, static_cast<off_t>(limit + 1));
}

TEST_F(FileCacheTest, EntriesAreBounded) {
  FileCache cache(root_);
  for (std::size_t i = 0; i < FileCache::kMaxEntries + 10; ++i) {
    ASSERT_EQ(cache.lookup("/" + std::string(i % 5, '/') + "a.txt", 0).status, 200);
    ASSERT_EQ(cache.lookup("/./a.txt/" + std::string(i % 3, '/'), 0).status, 404) << i;
  }
  for (std::size_t i = 0; i < FileCache::kMaxEntries + 10; ++i) {
    write(root_ + "/f" + std::to_string(i), "x");
    ASSERT_EQ(cache.lookup("/f" + std::to_string(i), 0).status, 200);
    ASSERT_LE(cache.size(), FileCache::kMaxEntries);
  }
}

TEST_F(FileCacheTest, ETagAndTheHeaderSetsOfEachAnswer) {
  FileCache cache(root_, FileCacheOptions{.cache_headers = "Cache-Control: public\r\n"});
  const StaticFile* f = cache.lookup("/a.txt", 0).file;
  ASSERT_NE(f, nullptr);
  struct stat st {};
  ASSERT_EQ(::stat((root_ + "/a.txt").c_str(), &st), 0);
  char expected[64];
  std::snprintf(expected, sizeof expected, "\"%lx-%lx\"", static_cast<unsigned long>(st.st_mtime),
                static_cast<unsigned long>(st.st_size));
  EXPECT_EQ(f->etag, expected) << "nginx's format";
  EXPECT_EQ(etag_of(st), expected);
  EXPECT_NE(f->headers.find("ETag: " + f->etag + "\r\n"), std::string::npos);
  EXPECT_NE(f->headers.find("Accept-Ranges: bytes\r\n"), std::string::npos);
  EXPECT_NE(f->headers.find("Cache-Control: public\r\n"), std::string::npos);
  EXPECT_EQ(f->range_headers.find("Accept-Ranges"), std::string::npos);
  EXPECT_NE(f->range_headers.find("Content-Type: "), std::string::npos);
  EXPECT_EQ(f->not_modified.find("Content-Type"), std::string::npos) << "a 304 describes no body";
  EXPECT_NE(f->not_modified.find("ETag: "), std::string::npos);
  EXPECT_NE(f->not_modified.find("Cache-Control: public"), std::string::npos);
  EXPECT_EQ(f->headers.find("Vary"), std::string::npos) << "no sibling, no Vary";
}

TEST_F(FileCacheTest, GzipSiblingsComeAndGo) {
  FileCache cache(root_, FileCacheOptions{.gzip_static = true});
  const StaticFile* f = cache.lookup("/a.txt", 0).file;
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->gzip, nullptr);
  write(root_ + "/a.txt.gz", "not really gzip");
  f = cache.lookup("/a.txt", FileCache::kValidMs).file;
  ASSERT_NE(f, nullptr);
  ASSERT_NE(f->gzip, nullptr) << "a sibling that appears is found at the next revalidation";
  EXPECT_EQ(*f->gzip->body, "not really gzip");
  EXPECT_NE(f->gzip->headers.find("Content-Encoding: gzip\r\n"), std::string::npos);
  EXPECT_NE(f->gzip->headers.find("Content-Type: text/plain"), std::string::npos) << "the plain file's type";
  EXPECT_NE(f->gzip->headers.find("Vary: Accept-Encoding\r\n"), std::string::npos);
  EXPECT_NE(f->headers.find("Vary: Accept-Encoding\r\n"), std::string::npos);
  fs::remove(root_ + "/a.txt.gz");
  f = cache.lookup("/a.txt", 2 * FileCache::kValidMs).file;
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->gzip, nullptr) << "and one that goes is forgotten";
  // A sibling escaping the root is not served.
  fs::create_symlink(base_ + "/outside/secret.txt", root_ + "/a.txt.gz");
  f = cache.lookup("/a.txt", 3 * FileCache::kValidMs).file;
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->gzip, nullptr);
  FileCache off(root_);
  EXPECT_EQ(off.lookup("/a.txt", 0).file->gzip, nullptr) << "gzip_static off";
}

TEST_F(FileCacheTest, OpenFilesAreReplacedWhenTheFileChanges) {
  const std::size_t limit = FileCacheOptions{}.max_body_bytes;
  write(root_ + "/big.bin", std::string(limit + 10, 'x'));
  FileCache cache(root_);
  const StaticFile* f = cache.lookup("/big.bin", 0).file;
  ASSERT_NE(f, nullptr);
  std::shared_ptr<const OpenFile> held = f->open;  // as a response in flight holds it
  const int old_fd = held->fd;
  write(root_ + "/big.bin.new", std::string(limit + 20, 'y'));
  fs::rename(root_ + "/big.bin.new", root_ + "/big.bin");
  f = cache.lookup("/big.bin", FileCache::kValidMs).file;
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->size(), limit + 20);
  EXPECT_NE(f->open, held) << "a new open file for the new file";
  EXPECT_EQ(cache.open_files(), 1u);
  EXPECT_GE(::fcntl(old_fd, F_GETFD), 0) << "the old fd stays open while a response holds it";
  held.reset();
  EXPECT_EQ(cache.lookup("/big.bin", FileCache::kValidMs).file->open->fd >= 0, true);
}

TEST_F(FileCacheTest, TheLastHitIsCheckedLikeAnyOther) {
  FileCache cache(root_);
  ASSERT_EQ(cache.lookup("/a.txt", 0).status, 200);
  fs::remove(root_ + "/a.txt");
  EXPECT_EQ(cache.lookup("/a.txt", 1).status, 200) << "inside the window";
  EXPECT_EQ(cache.lookup("/a.txt", FileCache::kValidMs).status, 404) << "the remembered hit expires too";
  EXPECT_EQ(cache.lookup("/%2e%2e/outside/secret.txt", 2).status, 403);
  EXPECT_EQ(cache.lookup("/a%zz", 2).status, 400);
}

}  // namespace
}  // namespace preforkd
