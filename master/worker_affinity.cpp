// Worker CPU affinity: see worker_affinity.hpp.
#include "master/worker_affinity.hpp"

#include <sched.h>

#include <cerrno>
#include <cstring>

namespace preforkd {

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return {};
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  return cpus;
}

int cpu_for_slot(const std::vector<int>& cpus, int slot) {
  if (cpus.empty() || slot < 0) return -1;
  return cpus[static_cast<std::size_t>(slot) % cpus.size()];
}

bool pin_to_cpu(pid_t pid, int cpu, std::string* error) {
  if (cpu < 0 || cpu >= CPU_SETSIZE) {
    *error = "no CPU to pin worker " + std::to_string(pid) + " to";
    return false;
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (::sched_setaffinity(pid, sizeof set, &set) == 0) return true;
  *error = "sched_setaffinity(" + std::to_string(pid) + ", CPU " + std::to_string(cpu) + "): " + std::strerror(errno);
  return false;
}

}  // namespace preforkd
