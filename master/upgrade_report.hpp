// The new master's half of a binary upgrade's report channel: a pipe the old
// master passes at USR2 (its fd named by PREFORKD_UPGRADE_REPORT_FD), on which
// the new master writes one line when it serves or why it could not start:
//
//   serving auto|manual\n     every worker of its first generation is ready; the
//                             word is its upgrade_handover
//   error TEXT\n              it is about to exit: TEXT is the error its log has
//
// so that the old master decides the hand-over itself and `preforkd -s upgrade
// --wait` prints the real error, not only an exit status. A master started by
// an older binary has no such pipe: then serving is told with a signal, as that
// binary expects (QUIT for auto, WINCH for manual), and errors only by the exit.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/config.hpp"

namespace preforkd::upgrade_report {

inline constexpr const char* kReportFdEnv = "PREFORKD_UPGRADE_REPORT_FD";

// Takes the pipe from the environment (once; later calls do nothing) and removes
// the variable, so that workers inherit neither it nor the fd.
void take_from_environment();

// Tells the old master that this one serves: through the pipe, or else with the
// signal an older old master expects. `old_master` must still be our parent
// (checked: otherwise it is gone and its pid may be someone else's).
void serving(pid_t old_master, UpgradeHandover handover);

// Tells the old master why this one is about to exit; the first error wins (it
// is the cause, what follows are consequences). A no-op without a pipe.
void failed(const std::string& error);

}  // namespace preforkd::upgrade_report
