// What ps shows for a worker. A spare is exec'd as "preforkd: spare" before it
// knows its slot; once started it rewrites its command line in place (nginx's
// setproctitle, within the original argv area only), so that ps, and the
// integration tests telling spares from workers, see a worker.
#pragma once

#include <string>
#include <vector>

namespace preforkd {

// Remembers the process's argv (from main, before anything else may move it).
void keep_process_args(int argc, char** argv);

// Replaces the command line with `args` (NUL-separated, as exec lays them out, so
// it reads like a worker's own), truncated to the space the original arguments
// had, the rest zeroed. No-op if keep_process_args was not called.
void set_process_args(const std::vector<std::string>& args);

}  // namespace preforkd
