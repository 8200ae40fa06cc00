// Signals in a worker before its handlers exist. libuv's uv_spawn gives the new
// process default dispositions and an empty mask, and by default HUP, USR1, USR2,
// QUIT, TERM and INT kill it and TTIN/TTOU stop it: a master relaying USR1 (a log
// rotation) to a worker still starting would kill it and abandon the reload.
#pragma once

namespace preforkd {

// First thing in a worker's main: blocks every signal the master or an operator
// may send, so that one arriving now waits instead of acting by default; the
// master-only ones (USR2, WINCH, TTIN, TTOU) are ignored for good.
void hold_worker_signals();

// Once the worker's uv_signal handlers exist: whatever arrived meanwhile is
// delivered to them now (a TERM during start-up stops the worker at once).
void release_worker_signals();

}  // namespace preforkd
