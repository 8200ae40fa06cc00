// The scheduling priority (nice) of workers at each stage of their start. A
// starting worker is the critical path of a reload (or of a crash's replacement),
// and under load it competes with the busy old workers for the CPU; a spare is
// the opposite, work done ahead that nothing waits for (see bench/results/RELOAD-TAIL.md
// for what each choice measured).
#pragma once

#include <sys/types.h>

namespace preforkd {

struct WorkerPriorities {
  int ready = 0;          // the master's own nice, which a ready worker returns to
  int starting = 0;       // a worker exec'd for its slot, from spawn until ready (~2.5 ms of CPU)
  int started_spare = 0;  // a spare from its start until ready (~0.2 ms of CPU: no boost)
  int spare = 0;          // an idle spare, until it is started
};

// Raising a priority needs CAP_SYS_NICE (a root master has it); without it the
// starting boost is not applied, and a spare is not lowered either, since it could
// not be raised back when it is started. PREFORKD_TEST_STARTING_NICE,
// PREFORKD_TEST_STARTED_SPARE_NICE and PREFORKD_TEST_SPARE_NICE (absolute nice
// values) override the choices for bench/reload_tail's comparisons.
WorkerPriorities worker_priorities();

// setpriority(PRIO_PROCESS, pid, nice); failures for want of privilege, or of the
// process, are expected and not logged.
void set_nice(pid_t pid, int nice);

}  // namespace preforkd
