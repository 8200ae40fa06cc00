// Worker priorities: see worker_priority.hpp.
#include "master/worker_priority.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/log.hpp"

namespace preforkd {
namespace {

// A starting worker gets about 5 ms of CPU ahead of the serving ones.
constexpr int kStartingBoost = -10;
// A spare is exec'd and linked in the background while workers serve.
constexpr int kSpareDrop = 10;

int env_nice(const char* name, int fallback) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return fallback;
  char* end = nullptr;
  long nice = std::strtol(value, &end, 10);
  if (*end != '\0' || nice < -20 || nice > 19) {
    PF_LOG_WARN("%s=%s: not a nice value (-20..19); ignored", name, value);
    return fallback;
  }
  return static_cast<int>(nice);
}

}  // namespace

WorkerPriorities worker_priorities() {
  WorkerPriorities p;
  errno = 0;
  int own = ::getpriority(PRIO_PROCESS, 0);
  // Not 0: a master started under `nice` keeps its workers there too.
  p.ready = errno == 0 ? own : 0;
  const bool privileged = ::geteuid() == 0;
  p.starting = privileged ? p.ready + kStartingBoost : p.ready;
  p.spare = privileged ? p.ready + kSpareDrop : p.ready;
  // A started spare needs a tenth of a fresh worker's CPU; boosting it measured
  // no faster and preempted the serving workers more (RELOAD-TAIL.md).
  p.started_spare = p.ready;
  if (p.starting < -20) p.starting = -20;
  if (p.spare > 19) p.spare = 19;
  p.starting = env_nice("PREFORKD_TEST_STARTING_NICE", p.starting);
  p.started_spare = env_nice("PREFORKD_TEST_STARTED_SPARE_NICE", p.started_spare);
  p.spare = env_nice("PREFORKD_TEST_SPARE_NICE", p.spare);
  return p;
}

void set_nice(pid_t pid, int nice) {
  if (::setpriority(PRIO_PROCESS, static_cast<id_t>(pid), nice) != 0 && errno != EACCES && errno != EPERM &&
      errno != ESRCH)
    PF_LOG_DEBUG("setpriority(%d, %d): %s", static_cast<int>(pid), nice, std::strerror(errno));
}

}  // namespace preforkd
