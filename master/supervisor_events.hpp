// What goes into the Supervisor (events) and what comes out (effects). The
// master carries the effects out (fork, kill, send, bind, close, steer, arm its
// timer) and feeds the results back as events, so the supervisor decides
// everything and does no I/O: any sequence of operator actions and faults is a
// unit test.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "common/config.hpp"
#include "common/ipc_message.hpp"
#include "master/notify_message.hpp"
#include "master/slot_sockets.hpp"

namespace preforkd {

// The configuration one generation serves and the exact text it was parsed from
// (the workers are handed the text, so they serve what was validated).
struct GenerationConfig {
  Config config;
  std::string text;
};
using GenerationPtr = std::shared_ptr<const GenerationConfig>;

// Slot sockets, as (listener, socket slot).
using SocketSet = std::set<std::pair<ListenerKey, int>>;

namespace event {

// The master is up: start generation 1. A master started by USR2 names the
// master it replaces and the sockets it adopted from it: while that master lives
// it holds copies of them too, so they stay in their reuseport groups whatever
// this master closes, and this master keeps them (see Supervisor).
struct Start {
  pid_t predecessor = 0;
  SocketSet adopted = {};
};
struct Signal {  // HUP, QUIT, TERM, INT, TTIN, TTOU, WINCH, USR1, USR2
  int signum = 0;
};
struct GenerationPrepared {  // answer to effect::PrepareGeneration
  unsigned generation = 0;
  GenerationPtr config;  // null: invalid or its sockets cannot be bound (logged)
  std::string error = {};  // when null: why, as the log has it after "reload: "
};
struct Spawned {  // answer to effect::Spawn
  int slot = 0;
  unsigned generation = 0;
  pid_t pid = 0;           // <= 0: the worker could not be started (logged)
  std::uint64_t draw = 0;  // a random number: the worker's max_requests jitter
  pid_t spare = 0;         // the spare Spawn asked to start, also when that failed
};
// Answer to effect::SpawnSpare: the idle process, or <= 0 (logged).
struct SpareSpawned {
  pid_t pid = 0;
};
struct WorkerMessage {  // Ready, Heartbeat, Draining from a worker's pipe
  pid_t pid = 0;
  ipc::Message message;
};
struct Notice {  // an exec-mode worker's sd_notify datagram, from its own NOTIFY_SOCKET
  pid_t pid = 0;
  NotifyMessage message;
};
struct ProtocolError {  // a worker sent something that does not decode
  pid_t pid = 0;
  std::string error;
};
struct Exited {
  pid_t pid = 0;
  int status = -1;  // exit code, or -1 when killed
  int signal = 0;
  // An exec program's last line on stderr (else stdout), bounded: a failed
  // start's reason quotes it. Empty for built-in workers, which report on IPC.
  std::string last_output;
};
struct Timer {};  // the time asked for by effect::ArmTimer has come

// The old master's side of a binary upgrade. Answer to effect::StartUpgrade:
// the new master's pid, or 0 and why it could not be started.
struct SuccessorStarted {
  pid_t pid = 0;
  std::string error = {};
};
// The new master reports that all its workers are ready, and how the hand-over
// goes (its configuration's upgrade_handover).
struct SuccessorServing {
  UpgradeHandover handover = UpgradeHandover::automatic;
};
// The new master exited; error: what it reported, or its exit status.
struct SuccessorExited {
  std::string error = {};
};
// The new master's side: the master it replaced is gone (the upgrade is complete,
// or it was stopped): the adopted sockets are this master's alone.
struct PredecessorGone {};

}  // namespace event

using Event = std::variant<event::Start, event::Signal, event::GenerationPrepared, event::Spawned, event::WorkerMessage,
                           event::Notice, event::ProtocolError, event::Exited, event::Timer,
                           event::SuccessorStarted, event::SuccessorServing, event::SuccessorExited,
                           event::PredecessorGone, event::SpareSpawned>;

// The sockets of one listener's SO_REUSEPORT group that may receive new
// connections; the others keep what is queued on them but get nothing new.
struct SteerGroup {
  ListenerConfig listener;
  std::set<int> slots;
  bool operator==(const SteerGroup& other) const {
    return key_of(listener) == key_of(other.listener) && listener.backlog == other.listener.backlog &&
           slots == other.slots;
  }
};

namespace effect {

// Read and validate the configuration for `generation` (1: the one the master
// started with; `reuse`: this one, not re-read) and bind every slot's sockets;
// answer with GenerationPrepared.
struct PrepareGeneration {
  unsigned generation = 0;
  GenerationPtr reuse = nullptr;  // a rollback's generation serves the configuration it served before USR2
};
// Start a worker for slot of generation with its slot sockets; answer with
// Spawned. spare: not a new process but this idle one (SpawnSpare), handed the
// sockets and its start message.
struct Spawn {
  int slot = 0;
  unsigned generation = 0;
  GenerationPtr config;
  pid_t spare = 0;
};
// Start an idle worker process (exec'd and linked, waiting for its sockets and
// start message), so that a later Spawn need not wait for fork+exec; answer with
// SpareSpawned.
struct SpawnSpare {};
struct Signal {
  pid_t pid = 0;
  int signum = 0;
};
// Tell the worker to stop accepting, finish its work and exit. linger_ms: how
// long it keeps accepting first, because nobody else polls its sockets.
struct Retire {
  pid_t pid = 0;
  std::uint32_t linger_ms = 0;
};
// The serving generation changed: apply its log settings.
struct ApplyConfig {
  unsigned generation = 0;
  GenerationPtr config;
};
// USR1: reopen the master's logs (those of `config`); the workers are signalled
// apart.
struct ReopenLogs {
  GenerationPtr config;
  std::size_t workers = 0;  // how many will be told, for the log line
};
// Close every slot socket not in `sockets`.
struct RetainSockets {
  SocketSet sockets;
};
struct Steer {
  std::vector<SteerGroup> groups = {};
  // Another master holds sockets of these groups too (a binary upgrade's two
  // masters): a group may have members this master does not know, so its
  // steering names its slots explicitly and never falls back to the kernel's
  // hash over the whole group.
  bool shared = false;
};
// USR2 accepted: start the binary as a new master with every slot socket;
// answer with SuccessorStarted.
struct StartUpgrade {};
// Deliver event::Timer at this loop time; 0 cancels.
struct ArmTimer {
  std::uint64_t due_ms = 0;
};
// News for observers (systemd, the admin endpoint, control-socket clients
// waiting for an outcome). Every reload request (HUP) gets an attempt number in
// reload_requested and exactly one reload_finished with that number, and every
// upgrade request (USR2) likewise; requests that coalesce share a number.
struct Notify {
  enum class What {
    generation_ready,
    reload_requested,
    reload_finished,
    upgrade_requested,
    upgrade_started,
    upgrade_finished,
    generation_gone,
    worker_gone
  } what;
  unsigned generation = 0;  // reload_finished: the serving generation
  bool ok = false;          // *_finished
  bool pending = false;     // reload_finished: another reload follows at once
  pid_t pid = 0;            // worker_gone; upgrade_started, upgrade_finished: the new master
  unsigned attempt = 0;     // *_requested, *_finished
  bool queued = false;      // reload_requested: it waits for the reload in progress
  std::string reason = {};  // *_finished and not ok: the error, as the log has it
  bool refused = false;     // *_finished and not ok: the request was not taken on (nothing was tried)
  UpgradeHandover handover = UpgradeHandover::automatic;  // upgrade_finished and ok
};
// Every worker is gone after a stop: the master may exit.
struct AllStopped {};

}  // namespace effect

using Effect = std::variant<effect::PrepareGeneration, effect::Spawn, effect::Signal, effect::Retire,
                            effect::ApplyConfig, effect::ReopenLogs, effect::RetainSockets, effect::Steer,
                            effect::ArmTimer, effect::Notify, effect::AllStopped, effect::StartUpgrade,
                            effect::SpawnSpare>;

}  // namespace preforkd
