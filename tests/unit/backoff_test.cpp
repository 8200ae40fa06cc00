// restart_delay_ms: immediate first restart, then doubling from base, capped.
#include "master/backoff.hpp"

#include <gtest/gtest.h>

#include <climits>
#include <cstdint>

namespace preforkd {
namespace {

BackoffPolicy policy(std::uint64_t base, std::uint64_t cap) {
  BackoffPolicy p;
  p.base_ms = base;
  p.cap_ms = cap;
  return p;
}

TEST(BackoffTest, NoFailureAndFirstFailureRestartImmediately) {
  const BackoffPolicy p = policy(100, 10'000);
  EXPECT_EQ(restart_delay_ms(p, 0), 0u);
  EXPECT_EQ(restart_delay_ms(p, 1), 0u);
}

TEST(BackoffTest, SecondFailureWaitsBase) {
  EXPECT_EQ(restart_delay_ms(policy(100, 10'000), 2), 100u);
  EXPECT_EQ(restart_delay_ms(policy(250, 10'000), 2), 250u);
  EXPECT_EQ(restart_delay_ms(policy(7, 10'000), 2), 7u);
}

TEST(BackoffTest, DelayDoublesAfterSecondFailure) {
  const BackoffPolicy p = policy(100, 10'000);
  EXPECT_EQ(restart_delay_ms(p, 3), 200u);
  EXPECT_EQ(restart_delay_ms(p, 4), 400u);
  EXPECT_EQ(restart_delay_ms(p, 5), 800u);
  EXPECT_EQ(restart_delay_ms(p, 6), 1'600u);
  EXPECT_EQ(restart_delay_ms(p, 7), 3'200u);
  EXPECT_EQ(restart_delay_ms(p, 8), 6'400u);
}

TEST(BackoffTest, DelayIsCappedAtCap) {
  const BackoffPolicy p = policy(100, 10'000);
  EXPECT_EQ(restart_delay_ms(p, 9), 10'000u);  // 12'800 capped
  EXPECT_EQ(restart_delay_ms(p, 10), 10'000u);
  EXPECT_EQ(restart_delay_ms(p, 20), 10'000u);
}

TEST(BackoffTest, CapThatIsNotAPowerOfTwoMultipleOfBase) {
  const BackoffPolicy p = policy(300, 1'000);
  EXPECT_EQ(restart_delay_ms(p, 2), 300u);
  EXPECT_EQ(restart_delay_ms(p, 3), 600u);
  EXPECT_EQ(restart_delay_ms(p, 4), 1'000u);  // 1'200 capped
  EXPECT_EQ(restart_delay_ms(p, 5), 1'000u);
}

TEST(BackoffTest, BaseAboveCapIsCapped) {
  const BackoffPolicy p = policy(5'000, 1'000);
  EXPECT_EQ(restart_delay_ms(p, 2), 1'000u);
  EXPECT_EQ(restart_delay_ms(p, 3), 1'000u);
}

TEST(BackoffTest, DelayNeverDecreasesAndNeverExceedsCap) {
  const BackoffPolicy p = policy(100, 10'000);
  std::uint64_t previous = 0;
  for (unsigned failures = 0; failures <= 200; ++failures) {
    const std::uint64_t d = restart_delay_ms(p, failures);
    EXPECT_GE(d, previous) << "failures=" << failures;
    EXPECT_LE(d, p.cap_ms) << "failures=" << failures;
    previous = d;
  }
}

// A doubling that is not stopped at the cap overflows after 64 steps and comes
// back as 0 (an immediate restart in a crash loop) or takes billions of steps.
TEST(BackoffTest, HugeFailureCountsStayAtCap) {
  const BackoffPolicy p = policy(100, 10'000);
  EXPECT_EQ(restart_delay_ms(p, 64), 10'000u);
  EXPECT_EQ(restart_delay_ms(p, 65), 10'000u);
  EXPECT_EQ(restart_delay_ms(p, 100), 10'000u);
  EXPECT_EQ(restart_delay_ms(p, 1'000), 10'000u);
  EXPECT_EQ(restart_delay_ms(p, 1'000'000), 10'000u);
  EXPECT_EQ(restart_delay_ms(p, UINT_MAX), 10'000u);
}

TEST(BackoffTest, DefaultPolicy) {
  const BackoffPolicy p;
  EXPECT_EQ(restart_delay_ms(p, 1), 0u);
  EXPECT_EQ(restart_delay_ms(p, 2), p.base_ms);
  EXPECT_EQ(restart_delay_ms(p, 3), 2 * p.base_ms);
  EXPECT_EQ(restart_delay_ms(p, 1'000), p.cap_ms);
}

}  // namespace
}  // namespace preforkd
