#include "worker/ascii.hpp"

#include <gtest/gtest.h>

#include <string>

namespace preforkd {
namespace {

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// Every pair of bytes against the plain definition (ASCII letters fold, nothing
// else does: not '@' and '`', not '[' and '{', not obs-text).
TEST(Ascii, IequalsFoldsLettersAndNothingElse) {
  for (int i = 0; i < 256; ++i) {
    for (int j = 0; j < 256; ++j) {
      char x = static_cast<char>(i), y = static_cast<char>(j);
      ASSERT_EQ(iequals(std::string(1, x), std::string(1, y)), lower(x) == lower(y)) << i << " " << j;
    }
  }
  EXPECT_TRUE(iequals("Content-Length", "content-length"));
  EXPECT_TRUE(iequals("HOST", "host"));
  EXPECT_FALSE(iequals("host", "hosts"));
  EXPECT_FALSE(iequals("hos@", "hos`"));
  EXPECT_TRUE(iequals("", ""));
}

}  // namespace
}  // namespace preforkd
