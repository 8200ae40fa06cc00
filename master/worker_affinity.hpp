// worker_cpu_affinity = "auto": each slot's worker pinned to one CPU, as nginx's
// `worker_cpu_affinity auto` does: the CPUs the master may run on, in turn. With
// the slot sockets' CPU steering (SlotSockets::set_slot_cpus), a connection is
// then served on the CPU the kernel handled it on: no cross-CPU wake-up, and its
// socket's cache lines stay on one core (bench/results/PROFILE-keepalive.md).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace preforkd {

// The CPUs this process may run on (sched_getaffinity), ascending; {} if unknown.
std::vector<int> allowed_cpus();

// Slot i's CPU: cpus[i % cpus.size()]; -1 when cpus is empty.
int cpu_for_slot(const std::vector<int>& cpus, int slot);

// sched_setaffinity(pid, {cpu}); false with *error ("sched_setaffinity(PID, CPU
// N): ...") on failure. Threads the process starts later inherit the mask.
bool pin_to_cpu(pid_t pid, int cpu, std::string* error);

}  // namespace preforkd
