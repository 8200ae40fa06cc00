// A program's output as error-log lines: split, bounded, cleaned, rate-limited.
#include "master/exec_output.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace preforkd {
namespace {

struct Collected {
  std::vector<std::string> lines;
  OutputLines::Sink sink() {
    return [this](std::string_view line) { lines.emplace_back(line); };
  }
};

TEST(OutputLines, OneLogLinePerLineWhateverTheReads) {
  OutputLines out;
  Collected c;
  auto sink = c.sink();
  out.feed("first li", 0, sink);
  EXPECT_TRUE(c.lines.empty());
  out.feed("ne\nsecond\r\n\nthird", 0, sink);
  EXPECT_EQ(c.lines, (std::vector<std::string>{"first line", "second", ""}));
  out.finish(0, sink);  // the program exited without a final newline
  EXPECT_EQ(c.lines.back(), "third");
  out.finish(0, sink);
  EXPECT_EQ(c.lines.size(), 4u);
}

// What a failed start's reason quotes: the last non-blank line, bounded and
// cleaned, whether it was logged or dropped by the rate limit.
TEST(OutputLines, TheLastLineIsKeptForAFailedStartsReason) {
  OutputLines out(/*max_line=*/2048, /*lines_per_second=*/2);
  Collected c;
  auto sink = c.sink();
  EXPECT_EQ(out.last_line(), "");
  out.feed("Traceback (most recent call last):\n  File \"app.py\"\n", 0, sink);
  EXPECT_EQ(out.last_line(), "  File \"app.py\"");
  out.feed("ModuleNotFoundError: No module named 'app'\x1b\n\n  \n", 0, sink);  // over the rate limit
  EXPECT_EQ(c.lines.size(), 2u);
  EXPECT_EQ(out.last_line(), "ModuleNotFoundError: No module named 'app'?");
  out.feed(std::string(1000, 'x') + "\n", 0, sink);
  EXPECT_EQ(out.last_line(), std::string(kMaxLastLine, 'x'));
  out.feed("no newline at exit", 0, sink);
  out.finish(0, sink);
  EXPECT_EQ(out.last_line(), "no newline at exit");
}

TEST(OutputLines, LongLinesAreCutAndControlCharactersReplaced) {
  OutputLines out(/*max_line=*/8, 1000);
  Collected c;
  auto sink = c.sink();
  out.feed("0123456789abcdefXY\no\x1b[1m\tr\n", 0, sink);
  EXPECT_EQ(c.lines, (std::vector<std::string>{"01234567", "... 89abcdef", "... XY", "o?[1m\tr"}));
  c.lines.clear();
  out.feed("01234567\n", 0, sink);  // exactly full: no empty continuation
  EXPECT_EQ(c.lines, (std::vector<std::string>{"01234567"}));
}

TEST(OutputLines, AFloodIsCountedNotLogged) {
  OutputLines out(/*max_line=*/64, /*lines_per_second=*/3);
  Collected c;
  auto sink = c.sink();
  std::string flood;
  for (int i = 0; i < 10; ++i) flood += "line " + std::to_string(i) + "\n";
  out.feed(flood, 5000, sink);
  EXPECT_EQ(c.lines, (std::vector<std::string>{"line 0", "line 1", "line 2"}));
  out.feed("later\n", 5999, sink);  // same second: dropped too
  out.feed("next second\n", 6000, sink);
  ASSERT_EQ(c.lines.size(), 5u);
  EXPECT_EQ(c.lines[3], "(8 line(s) not logged: more than 3 lines in one second)");
  EXPECT_EQ(c.lines[4], "next second");
  for (int i = 0; i < 5; ++i) out.feed("x\n", 6001, sink);
  out.finish(6002, sink);  // the count of the last second is not lost at exit
  EXPECT_EQ(c.lines.back(), "(3 line(s) not logged: more than 3 lines in one second)");
}

}  // namespace
}  // namespace preforkd
