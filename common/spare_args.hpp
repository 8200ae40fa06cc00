// The command line a pre-spawned spare worker is exec'd with; the master appends
// "--master-pid PID". Once started, a spare rewrites its command line in place to a
// worker's ("preforkd: worker --worker --slot S --generation G"), within the bytes
// these arguments took (worker/process_title.hpp). --title-room reserves enough of
// them whatever the pid, slot and generation: without it a 3-digit master pid left
// 49 bytes and "--generation 14" read "--generation 1" (found by the torture test,
// whose worker-set check reads the generation from /proc/PID/cmdline, as ps shows it).
#pragma once

namespace preforkd {

inline constexpr const char* kSpareArgs[] = {"preforkd: spare", "--worker", "--spare", "--title-room",
                                             "................................"};

}  // namespace preforkd
