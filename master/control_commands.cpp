// ControlCommands: requests in, supervisor notifications matched to waiting clients.
#include "master/control_commands.hpp"

#include <unistd.h>

#include <algorithm>

#include "master/control_protocol.hpp"

namespace preforkd {

ControlCommands::ControlCommands(uv_loop_t* loop, Actions& actions) : server_(loop, *this), master_(actions) {}

void ControlCommands::on_request(ControlServer::ClientId client, std::string_view line) {
  std::string error;
  auto command = control::parse_request(line, &error);
  if (!command) {
    server_.send(client, control::error_reply(error));
    server_.finish(client);
    return;
  }
  if (*command == control::Command::status) {
    nlohmann::json status = nlohmann::json::parse(master_.status_json(), nullptr, /*allow_exceptions=*/false);
    server_.send(client, control::reply_line({{"event", "status"}, {"status", status}}));
    server_.finish(client);
    return;
  }
  // The supervisor answers within this call with a *_requested notification (and
  // perhaps already with the outcome): notify() attaches the client to it.
  asking_ = client;
  attached_ = false;
  if (*command == control::Command::reload) master_.request_reload();
  else master_.request_upgrade();
  asking_ = 0;
  if (!attached_) {
    // Cannot happen while the supervisor keeps its promise; never leave a client hanging.
    server_.send(client, control::reply_line({{"event", "finished"}, {"ok", false},
                                              {"error", "the master did not take the request"}}));
    server_.finish(client);
  }
}

void ControlCommands::on_client_gone(ControlServer::ClientId client) {
  for (auto* waiting : {&reload_waiters_, &upgrade_waiters_})
    for (auto& [attempt, clients] : *waiting) std::erase(clients, client);
}

void ControlCommands::answer(std::map<unsigned, std::vector<ControlServer::ClientId>>& waiting, unsigned attempt,
                             const std::string& line) {
  auto it = waiting.find(attempt);
  if (it == waiting.end()) return;
  std::vector<ControlServer::ClientId> clients = std::move(it->second);
  waiting.erase(it);
  for (ControlServer::ClientId client : clients) {
    server_.send(client, line);
    server_.finish(client);
  }
}

void ControlCommands::notify(const effect::Notify& n) {
  using What = effect::Notify::What;
  switch (n.what) {
    case What::reload_requested:
    case What::upgrade_requested: {
      if (asking_ == 0) return;  // a signal, not one of our clients
      auto& waiting = n.what == What::reload_requested ? reload_waiters_ : upgrade_waiters_;
      waiting[n.attempt].push_back(asking_);
      attached_ = true;
      nlohmann::json accepted = {{"event", "accepted"}, {"attempt", n.attempt}};
      if (n.what == What::reload_requested) accepted["queued"] = n.queued;
      server_.send(asking_, control::reply_line(accepted));
      return;
    }
    case What::upgrade_started: {
      auto it = upgrade_waiters_.find(n.attempt);
      if (it == upgrade_waiters_.end()) return;
      std::string line = control::reply_line({{"event", "started"}, {"new_master", n.pid}});
      for (ControlServer::ClientId client : it->second) server_.send(client, line);
      return;
    }
    case What::reload_finished: {
      nlohmann::json finished = {{"event", "finished"}, {"ok", n.ok}, {"generation", n.generation}};
      if (!n.ok) finished["error"] = n.reason;
      answer(reload_waiters_, n.attempt, control::reply_line(finished));
      return;
    }
    case What::upgrade_finished: {
      nlohmann::json finished = {{"event", "finished"}, {"ok", n.ok}};
      if (n.pid > 0) finished["new_master"] = n.pid;
      if (n.ok) {
        finished["old_master"] = ::getpid();
        finished["handover"] = std::string(handover_name(n.handover));
      } else {
        finished["error"] = n.reason;
      }
      answer(upgrade_waiters_, n.attempt, control::reply_line(finished));
      return;
    }
    case What::generation_ready:
    case What::generation_gone:
    case What::worker_gone: return;
  }
}

}  // namespace preforkd
