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

namespace event {

struct Start {};  // the master is up: start generation 1
struct Signal {   // HUP, QUIT, TERM, INT, TTIN, TTOU, WINCH, USR1
  int signum = 0;
};
struct GenerationPrepared {  // answer to effect::PrepareGeneration
  unsigned generation = 0;
  GenerationPtr config;  // null: invalid or its sockets cannot be bound (logged)
};
struct Spawned {  // answer to effect::Spawn
  int slot = 0;
  unsigned generation = 0;
  pid_t pid = 0;           // <= 0: the worker could not be started (logged)
  std::uint64_t draw = 0;  // a random number: the worker's max_requests jitter
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
};
struct Timer {};  // the time asked for by effect::ArmTimer has come

}  // namespace event

using Event = std::variant<event::Start, event::Signal, event::GenerationPrepared, event::Spawned, event::WorkerMessage,
                           event::Notice, event::ProtocolError, event::Exited, event::Timer>;

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

using SocketSet = std::set<std::pair<ListenerKey, int>>;

namespace effect {

// Read and validate the configuration for `generation` (1: the one the master
// started with) and bind every slot's sockets; answer with GenerationPrepared.
struct PrepareGeneration {
  unsigned generation = 0;
};
// Start a worker for slot of generation with its slot sockets; answer with
// Spawned.
struct Spawn {
  int slot = 0;
  unsigned generation = 0;
  GenerationPtr config;
};
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
  std::vector<SteerGroup> groups;
};
// Deliver event::Timer at this loop time; 0 cancels.
struct ArmTimer {
  std::uint64_t due_ms = 0;
};
// News for observers (systemd, the admin endpoint, a binary upgrade in
// progress).
struct Notify {
  enum class What { generation_ready, reload_finished, generation_gone, worker_gone } what;
  unsigned generation = 0;
  bool ok = false;       // reload_finished
  bool pending = false;  // reload_finished: another reload follows at once
  pid_t pid = 0;         // worker_gone
};
// Every worker is gone after a stop: the master may exit.
struct AllStopped {};

}  // namespace effect

using Effect = std::variant<effect::PrepareGeneration, effect::Spawn, effect::Signal, effect::Retire,
                            effect::ApplyConfig, effect::ReopenLogs, effect::RetainSockets, effect::Steer,
                            effect::ArmTimer, effect::Notify, effect::AllStopped>;

}  // namespace preforkd
