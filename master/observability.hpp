// What the master tells the outside world about itself: the admin endpoint
// (/metrics, /status) and systemd's notify protocol. It reads the supervisor's
// state (workers, counters) and keeps only what it tells: the last reload's
// result and what systemd has been told.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <string>

#include "common/config.hpp"
#include "common/ipc_message.hpp"
#include "master/admin_server.hpp"
#include "master/metrics.hpp"
#include "master/supervisor.hpp"
#include "master/systemd_notify.hpp"

namespace preforkd {

class Observability final : public AdminServer::Provider {
 public:
  Observability(uv_loop_t* loop, const Supervisor& supervisor);

  // Binds the admin listener if configured; false (logged, and in *error) if it cannot.
  bool start(const AdminConfig& admin, std::string* error);
  void close();
  // The $NOTIFY_SOCKET a USR2 successor must be given ("" when not under systemd).
  const std::string& notify_socket() const { return notifier_.socket_path(); }

  // --- Events, from master.cpp ---
  void generation_ready();  // every slot of the serving generation is ready
  void reload_requested();  // the supervisor takes a reload on (not a queued one)
  // pending: another reload follows at once (READY=1 after that one).
  void reload_finished(unsigned generation, bool ok, bool pending);
  // QUIT/TERM/INT. handed_over: a USR2 successor has taken over as the main
  // process. predecessor: the master we replaced, still running, which becomes
  // the main process again (a rollback), or 0.
  void stopping(bool handed_over, pid_t predecessor);
  // USR2's new master serves (ok): it is the main process and answers on the
  // admin address from now on.
  void upgrade_finished(bool ok);
  // The new master exited: if it had taken over, we are the service again.
  void successor_exited();

  // --- AdminServer::Provider ---
  std::string metrics_text() override { return render_prometheus(snapshot()); }
  std::string status_json() override { return render_status_json(snapshot()); }
  MetricsSnapshot snapshot() const;

 private:
  std::string status_line() const;

  uv_loop_t* loop_;
  const Supervisor& supervisor_;
  SystemdNotifier notifier_;
  AdminServer admin_;
  ReloadResult last_reload_;
  AdminConfig admin_config_;
  bool handed_over_ = false;  // a successor serves (or served until it exited): we told systemd nothing since
  double start_time_unix_s_;
  std::uint64_t start_ms_;
  bool announced_ready_ = false;
  bool announced_stopping_ = false;
  bool reload_announced_ = false;  // RELOADING=1 sent, READY=1 not yet
};

}  // namespace preforkd
