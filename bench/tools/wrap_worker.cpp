// wrap_worker: an LD_PRELOAD shim for profiling one preforkd worker without
// profiling its master. The master starts each worker with uv_spawn, which execs
// /proc/self/exe; a tool run on the master (valgrind --trace-children=yes) would
// exec its own image there instead and fail. With this shim preloaded into a
// native master, each worker exec becomes
//
//   WRAPPER WORDS... /path/of/preforkd --worker ...
//
// where the wrapper comes from the environment, split on spaces:
//
//   export PREFORKD_WRAP_WORKER="valgrind --tool=callgrind --collect-atstart=no"
//   LD_PRELOAD=build-bench/bench/libwrap_worker.so preforkd -c bench.toml
//
// Used by the commands in bench/results/PROFILE-keepalive.md; never by bench/run.
#include <dlfcn.h>
#include <limits.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

extern "C" int execvp(const char* file, char* const argv[]) {
  using Execvp = int (*)(const char*, char* const[]);
  static Execvp real = reinterpret_cast<Execvp>(dlsym(RTLD_NEXT, "execvp"));
  const char* wrapper = std::getenv("PREFORKD_WRAP_WORKER");
  if (wrapper == nullptr || std::strcmp(file, "/proc/self/exe") != 0) return real(file, argv);
  // In the forked child /proc/self/exe still names the master's image.
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return real(file, argv);
  exe[n] = '\0';
  std::vector<std::string> words;
  std::istringstream split(wrapper);
  for (std::string w; split >> w;) words.push_back(w);
  words.push_back(exe);
  for (int i = 1; argv[i] != nullptr; ++i) words.push_back(argv[i]);
  std::vector<char*> args;
  for (auto& w : words) args.push_back(w.data());
  args.push_back(nullptr);
  return real(args[0], args.data());
}
