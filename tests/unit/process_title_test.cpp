// A started spare's command line must read like a worker's, whole, in the bytes
// the spare was exec'd with (common/spare_args.hpp), for the shortest master pid.
#include "worker/process_title.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/spare_args.hpp"

namespace preforkd {
namespace {

TEST(ProcessTitle, AStartedSparesTitleFitsWhatItWasExecdWith) {
  // The kernel's layout: the arguments back to back, NUL after each.
  std::vector<std::string> exec_args(std::begin(kSpareArgs), std::end(kSpareArgs));
  exec_args.insert(exec_args.end(), {"--master-pid", "7"});
  std::string area;
  std::vector<std::size_t> starts;
  for (const std::string& a : exec_args) {
    starts.push_back(area.size());
    area.append(a).push_back('\0');
  }
  std::vector<char*> argv;
  for (std::size_t at : starts) argv.push_back(area.data() + at);
  keep_process_args(static_cast<int>(argv.size()), argv.data());

  // The longest slot and generation an ipc::Start can carry.
  const std::vector<std::string> title = {"preforkd: worker", "--worker", "--slot", "2147483647", "--generation",
                                          "4294967295"};
  set_process_args(title);
  std::string expected;
  for (const std::string& a : title) expected.append(a).push_back('\0');
  EXPECT_EQ(area.substr(0, expected.size()), expected);
  EXPECT_EQ(area.find_first_not_of('\0', expected.size()), std::string::npos) << "the rest zeroed";
  keep_process_args(0, nullptr);  // forget the test's buffer
}

}  // namespace
}  // namespace preforkd
