// FileCache against a real temp tree: hits within the validity window, reloads
// after it, no caching of errors, bounds, and symlinks swapped to escape the root.
#include "worker/file_cache.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <climits>
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

TEST_F(FileCacheTest, HitsWithinTheWindowIgnoringTheQuery) {
  FileCache cache(root_);
  auto first = cache.lookup("/a.txt", 1000).file;
  write(root_ + "/a.txt", "second!");
  auto again = cache.lookup("/a.txt?x=1", 1000 + FileCache::kValidMs - 1);
  EXPECT_EQ(again.file, first) << "same entry inside the window, whatever the query";
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
  write(root_ + "/big.bin", std::string(FileCache::kMaxBodyBytes + 1, 'x'));
  FileCache cache(root_);
  FileLookup found = cache.lookup("/big.bin", 0);
  ASSERT_EQ(found.status, 200);
  EXPECT_FALSE(found.file->body);
  EXPECT_EQ(found.file->st.st_size, static_cast<off_t>(FileCache::kMaxBodyBytes + 1));
}

TEST_F(FileCacheTest, EntriesAreBounded) {
  FileCache cache(root_);
  for (std::size_t i = 0; i < FileCache::kMaxEntries + 10; ++i) {
    ASSERT_EQ(cache.lookup("/a.txt?" + std::to_string(i), 0).status, 200);
    ASSERT_EQ(cache.lookup("/./a.txt/" + std::string(i % 3, '/'), 0).status, 404) << i;
  }
  for (std::size_t i = 0; i < FileCache::kMaxEntries + 10; ++i) {
    write(root_ + "/f" + std::to_string(i), "x");
    ASSERT_EQ(cache.lookup("/f" + std::to_string(i), 0).status, 200);
    ASSERT_LE(cache.size(), FileCache::kMaxEntries);
  }
}

}  // namespace
}  // namespace preforkd
