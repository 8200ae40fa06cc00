// The programs exec-mode tests run under preforkd ([exec]), each a real server
// from Debian 12's packages speaking systemd's socket-activation protocol in its
// own way (tests/integration/exec/ holds their sources), and a preforkd set up
// to run one of them on a loopback port chosen at run time.
#pragma once

#include <sys/types.h>

#include <map>
#include <ostream>
#include <optional>
#include <string>
#include <vector>

#include "tests/integration/harness.hpp"

namespace itest {

struct ExecProgram {
  std::string name;                 // gunicorn, uvicorn, go, node, python-udp
  bool udp = false;                 // a datagram listener "dns" instead of a stream listener "http"
  bool graceful_keepalive = false;  // its stop loses no keep-alive request (Connection: close, then idle close)
  std::string exec_keys;            // the [exec] table's keys (command, ready, ...)
  // Its stop closes connections it accepted but has not read a request from
  // yet (uvicorn 0.17: Server.shutdown -> protocol.shutdown() with no cycle):
  // a reload under load fails a few requests inside the program, after the
  // socket handed them over. What preforkd answers for is then that no
  // connection is refused, reset or left unanswered at the socket.
  bool drops_unread_at_stop = false;
};

// For gtest's test names and messages.
inline void PrintTo(const ExecProgram& program, std::ostream* out) { *out << program.name; }

// The five programs; the Go server is built on first use (see go_server_binary).
std::vector<ExecProgram> exec_programs();
// Those whose stop loses no keep-alive request.
std::vector<ExecProgram> graceful_keepalive_programs();
ExecProgram exec_program(const std::string& name);
std::string exec_fixtures_dir();
// The Go server of exec/server.go built with golang-go and Debian's go-systemd
// sources (GOPATH mode, offline), once per build tree: cached by the source's
// hash. "" with *error if it cannot be built.
std::string go_server_binary(std::string* error);

struct ExecOptions {
  int workers = 2;
  double graceful_timeout = 10;
  double worker_timeout = 30;
  std::string top;         // more top-level keys
  std::string exec_extra;  // more [exec] keys
  bool admin = false;      // an [admin] endpoint on a free port
};

// preforkd running `program` in every slot. The harness's Preforkd writes its
// own config; this replaces it before the start.
class ExecServer {
 public:
  ExecServer(ExecProgram program, ExecOptions options = {});
  bool start(std::string* why = nullptr, Millis timeout = 30s);
  // Rewrites the config: a new worker count and/or other [exec] keys.
  void rewrite(int workers, const std::string& exec_extra);
  void rewrite(int workers) { rewrite(workers, options_.exec_extra); }
  std::string config_text() const;

  Preforkd& server() { return server_; }
  const Preforkd& server() const { return server_; }
  const ExecProgram& program() const { return program_; }
  int port() const { return server_.http_port(); }  // free for TCP and UDP alike
  int admin_port() const { return admin_port_; }
  std::vector<pid_t> workers() const { return server_.worker_pids(); }

  // Reloads finished so far ("all N workers ready; retiring generation" lines).
  std::size_t reloads_done() const;
  // HUP, then waits until that reload finished (or failed); false on timeout.
  bool reload(Millis timeout = 40s);
  // One request (or "whoami" datagram): the answering worker's slot and
  // generation, nullopt if it failed.
  struct Answer {
    int slot = -1;
    unsigned generation = 0;
    pid_t pid = 0;  // HTTP only: the process that answered (gunicorn: its worker)
  };
  std::optional<Answer> ask() const;

 private:
  ExecProgram program_;
  ExecOptions options_;
  Preforkd server_;
  int admin_port_ = 0;
};

}  // namespace itest
