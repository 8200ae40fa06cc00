// What the control socket's commands do (control_protocol.hpp): status answers
// at once; reload and upgrade are handed to the supervisor as HUP and USR2 are,
// and each client is answered when the supervisor reports the outcome of the
// attempt its request became (Notify reload_requested / reload_finished and the
// upgrade ones). The supervisor decides; this only keeps who waits for what.
#pragma once

#include <uv.h>

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "master/control_socket.hpp"
#include "master/supervisor_events.hpp"

namespace preforkd {

class ControlCommands final : public ControlServer::Handler {
 public:
  // What a command sets going in the master.
  class Actions {
   public:
    virtual ~Actions() = default;
    virtual void request_reload() = 0;   // as SIGHUP: the supervisor answers with Notify effects
    virtual void request_upgrade() = 0;  // as SIGUSR2
    virtual std::string status_json() = 0;
  };

  ControlCommands(uv_loop_t* loop, Actions& actions);

  bool start(const std::string& path, std::string* error) { return server_.listen(path, error); }
  // Clients still waiting are dropped: they see the connection close without an
  // answer, and say so.
  void close() { server_.close(); }
  ControlServer& server() { return server_; }

  // Every Notify effect the master carries out passes through here.
  void notify(const effect::Notify& notify);

  // --- ControlServer::Handler ---
  void on_request(ControlServer::ClientId client, std::string_view line) override;
  void on_client_gone(ControlServer::ClientId client) override;

 private:
  void answer(std::map<unsigned, std::vector<ControlServer::ClientId>>& waiting, unsigned attempt,
              const std::string& line);

  ControlServer server_;
  Actions& master_;
  // The client whose request is being handed to the supervisor right now: the
  // *_requested notification that comes back names the attempt it waits for.
  ControlServer::ClientId asking_ = 0;
  bool attached_ = false;
  std::map<unsigned, std::vector<ControlServer::ClientId>> reload_waiters_;
  std::map<unsigned, std::vector<ControlServer::ClientId>> upgrade_waiters_;
};

}  // namespace preforkd
