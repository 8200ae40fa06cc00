// Replays every committed fuzz input (seeds and crash regressions) through the same
// entry functions the fuzzers use, so the corpus is a regression suite in every
// build, with or without clang and libFuzzer.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_entries.hpp"

namespace {

namespace fs = std::filesystem;
using Entry = void (*)(const std::uint8_t*, std::size_t);

std::vector<fs::path> corpus_files(const std::string& target) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(fs::path(PREFORKD_FUZZ_CORPUS) / target))
    if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

void replay(const std::string& target, Entry entry) {
  auto files = corpus_files(target);
  // A missing or emptied corpus must not pass silently.
  ASSERT_GE(files.size(), 5u) << "corpus for " << target << " is missing";
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    ASSERT_TRUE(in) << file;
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    try {
      entry(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    } catch (const std::exception& e) {
      ADD_FAILURE() << file << ": " << e.what();
    }
  }
  std::cout << "[ replayed ] " << files.size() << " " << target << " inputs\n";
}

TEST(FuzzCorpus, Http) { replay("http", preforkd::fuzz::http_one_input); }
TEST(FuzzCorpus, HttpScan) { replay("http_scan", preforkd::fuzz::http_scan_one_input); }
TEST(FuzzCorpus, Config) { replay("config", preforkd::fuzz::config_one_input); }
TEST(FuzzCorpus, Ipc) { replay("ipc", preforkd::fuzz::ipc_one_input); }

}  // namespace
