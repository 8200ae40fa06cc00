// The worker's life: wait for the master's start message (slot, generation and the
// exact config text the master validated), open its own SO_REUSEPORT sockets, tell
// the master it is ready, serve, and on retirement drain and exit. A worker never
// outlives its master: PR_SET_PDEATHSIG plus EOF on the IPC pipe.
#include "worker/worker.hpp"

#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "common/fd_passing.hpp"
#include "common/ipc_channel.hpp"
#include "common/listen_socket.hpp"
#include "common/log.hpp"
#include "common/uv_handle.hpp"
#include "worker/access_log.hpp"
#include "common/protocol_registry.hpp"
#include "worker/protocol_context.hpp"
#include "worker/privileges.hpp"
#include "worker/process_title.hpp"
#include "worker/stream_connection.hpp"
#include "worker/tcp_listener.hpp"
#include "worker/udp_listener.hpp"
#include "worker/worker_signals.hpp"

namespace preforkd {
namespace {

constexpr std::uint64_t kHeartbeatIntervalMs = 1000;

// User + system CPU time this process has used, in ms (exec, linking and start-up
// included): the start-up cost, independent of how busy the machine is.
double cpu_ms() {
  rusage usage{};
  if (::getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  auto ms = [](const timeval& t) { return t.tv_sec * 1e3 + t.tv_usec / 1e3; };
  return ms(usage.ru_utime) + ms(usage.ru_stime);
}

class WorkerLoop {
 public:
  // passed_fds: a spare's listening sockets, received before its start message
  // (which then carries none); empty for a worker that inherited them.
  WorkerLoop(uv_loop_t* loop, bool spare, std::vector<int> passed_fds)
      : loop_(loop),
        spare_(spare),
        passed_fds_(std::move(passed_fds)),
        connections_(loop, stats_),
        ipc_(this),
        heartbeat_(this),
        linger_(this) {}

  int run(int ipc_fd) {
    if (!open_ipc(ipc_fd)) return 1;
    watch_signal(SIGTERM);
    watch_signal(SIGINT);
    watch_signal(SIGQUIT);
    watch_signal(SIGUSR1);
    watch_signal(SIGHUP);
    // Held since main (see worker_signals.hpp): what came meanwhile runs now.
    release_worker_signals();
    uv_run(loop_, UV_RUN_DEFAULT);
    return exit_code_;
  }

 private:
  enum class State { waiting_for_start, serving, retiring, stopped };

  bool open_ipc(int fd) {
    int rc = uv_pipe_init(loop_, ipc_.get(), /*ipc=*/0);  // frames only: no fd is ever passed
    if (rc == 0) {
      ipc_.mark_initialized();
      rc = uv_pipe_open(ipc_.get(), fd);
    }
    if (rc == 0) rc = uv_read_start(ipc_.stream(), on_ipc_alloc, on_ipc_read);
    if (rc != 0) {
      PF_LOG_ERROR("ipc pipe on fd %d: %s", fd, uv_strerror(rc));
      return false;
    }
    return true;
  }

  void watch_signal(int signum) {
    auto& handle = signals_.emplace_back(this);
    int rc = uv_signal_init(loop_, handle.get());
    if (rc == 0) {
      handle.mark_initialized();
      rc = uv_signal_start(handle.get(), on_signal, signum);
    }
    if (rc != 0) PF_LOG_ERROR("uv_signal_start(%s): %s", strsignal(signum), uv_strerror(rc));
    // Signal handles must not keep the loop alive once everything else is closed.
    uv_unref(handle.handle());
  }

  static void on_signal(uv_signal_t* handle, int signum) {
    auto* self = owner_of<WorkerLoop>(handle);
    switch (signum) {
      case SIGTERM:
      case SIGINT: self->stop_now("signal"); break;
      case SIGQUIT: self->retire(); break;
      case SIGUSR1: self->reopen_log(); break;
      default: break;  // HUP is the master's business; a worker ignores it
    }
  }

  static void on_ipc_alloc(uv_handle_t*, size_t, uv_buf_t* buf) {
    static char buffer[64 * 1024];
    *buf = uv_buf_init(buffer, sizeof buffer);
  }

  static void on_ipc_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    auto* self = owner_of<WorkerLoop>(stream);
    if (!self) return;
    if (nread < 0) {
      // EOF: the master is gone. Nobody would supervise or retire us any more.
      self->stop_now(nread == UV_EOF ? "master closed the ipc channel" : uv_strerror(static_cast<int>(nread)));
      return;
    }
    self->decoder_.feed(std::span<const char>(buf->base, static_cast<std::size_t>(nread)));
    std::string error;
    while (auto message = self->decoder_.next(&error)) self->handle(*message);
    if (self->decoder_.failed()) self->stop_now(("bad message from master: " + error).c_str());
  }

  void handle(const ipc::Message& message) {
    if (auto* start = std::get_if<ipc::Start>(&message)) {
      if (state_ != State::waiting_for_start) return;
      if (!spare_) return begin_serving(*start);
      ipc::Start adopted = *start;
      adopted.listener_fds.assign(passed_fds_.begin(), passed_fds_.end());
      set_process_args({"preforkd: worker", "--worker", "--slot", std::to_string(start->slot), "--generation",
                        std::to_string(start->generation)});
      begin_serving(adopted);
    } else if (auto* retire_message = std::get_if<ipc::Retire>(&message)) {
      retire(retire_message->linger_ms);
    }
  }

  void begin_serving(const ipc::Start& start) {
    const std::uint64_t started_ns = uv_hrtime();
    const double cpu_at_start = cpu_ms();
    log::set_identity("worker", static_cast<int>(start.slot), start.generation);
    // Test hook for crash-loop tests: while the named file exists, workers die at once.
    if (const char* path = std::getenv("PREFORKD_TEST_CRASH_IF_EXISTS"); path && ::access(path, F_OK) == 0) {
      PF_LOG_ERROR("test hook: %s exists; exiting at once", path);
      std::_Exit(70);
    }
    try {
      config_ = parse_config(start.config_text, start.config_path);
    } catch (const ConfigError& e) {
      PF_LOG_ERROR("config: %s", e.what());
      return fail(2);
    }
    std::string error;
    log::set_level(config_.log.level);
    if (!log::open(config_.log.error_log, &error)) PF_LOG_ERROR("%s", error.c_str());
    if (!access_log::open(config_.log.access_log, &error)) PF_LOG_ERROR("%s", error.c_str());
    // Raised while still root: above the hard limit only root may go.
    if (config_.worker_rlimit_nofile != 0 && !set_nofile_limit(config_.worker_rlimit_nofile, &error))
      PF_LOG_ERROR("worker_rlimit_nofile: %s", error.c_str());
    if (start.listener_fds.size() != config_.listeners.size()) {
      PF_LOG_ERROR("master passed %zu listener fds for %zu listeners", start.listener_fds.size(),
                   config_.listeners.size());
      return fail(2);
    }
    apply_test_fd_limit();
    connections_.set_capacity(static_cast<std::size_t>(config_.max_connections), [this] {
      for (auto& l : tcp_listeners_) l->resume_accepting();
    });
    // Sockets (inherited) and logs are open; nothing after this needs root, and no
    // protocol code runs before it.
    if (!drop_privileges(config_.run_as, &error)) {
      PF_LOG_ERROR("dropping privileges: %s", error.c_str());
      return fail(2);
    }
    if (!start_protocols(start)) return fail(2);
    for (std::size_t i = 0; i < config_.listeners.size(); ++i) {
      if (!adopt_listener(config_.listeners[i], start.listener_fds[i])) return fail(2);
    }
    state_ = State::serving;
    start_heartbeat();
    send(ipc::Ready{});
    const double cpu = cpu_ms();
    PF_LOG_INFO("serving %zu listener(s) (start message to ready %.1f ms; CPU since exec %.1f ms, %.1f ms of it after "
                "the start message)",
                config_.listeners.size(), (uv_hrtime() - started_ns) / 1e6, cpu, cpu - cpu_at_start);
  }

  // Test hook for fd-exhaustion tests: lowers RLIMIT_NOFILE so that accept4 meets
  // EMFILE after a few dozen connections instead of after a million.
  static void apply_test_fd_limit() {
    const char* value = std::getenv("PREFORKD_TEST_RLIMIT_NOFILE");
    if (value == nullptr) return;
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
      PF_LOG_ERROR("test hook: getrlimit(RLIMIT_NOFILE): %s", std::strerror(errno));
      return;
    }
    limit.rlim_cur = std::strtoul(value, nullptr, 10);
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
      PF_LOG_ERROR("test hook: setrlimit(RLIMIT_NOFILE, %s): %s", value, std::strerror(errno));
    } else {
      PF_LOG_WARN("test hook: RLIMIT_NOFILE lowered to %s", value);
    }
  }

  // on_worker_start of each protocol with listeners here, once, in config order.
  bool start_protocols(const ipc::Start& start) {
    for (const ListenerConfig& listener : config_.listeners) {
      if (protocol_worker(listener.protocol.name)) continue;
      const ProtocolSpec* spec = process_registry().find(listener.protocol.name);
      if (spec == nullptr || spec->protocol == nullptr) {
        PF_LOG_ERROR("protocol \"%s\" is not registered in this binary", listener.protocol.name.c_str());
        return false;
      }
      auto& worker = protocols_.emplace_back(std::make_unique<ProtocolWorker>(
          *spec, loop_, static_cast<int>(start.slot), start.generation, retiring_, stats_));
      try {
        worker->protocol().on_worker_start(*worker);
      } catch (const std::exception& e) {
        PF_LOG_ERROR("protocol %s: on_worker_start: %s", spec->name.c_str(), e.what());
        return false;
      }
      worker->started = true;
    }
    return true;
  }

  ProtocolWorker* protocol_worker(const std::string& name) const {
    for (const auto& p : protocols_)
      if (p->spec().name == name) return p.get();
    return nullptr;
  }

  // The socket was made by the master for this slot (SO_REUSEPORT, bound, listening)
  // and inherited at `fd`; it outlives this worker and is handed to its successor.
  // The protocol's factory makes the listener's handler.
  bool adopt_listener(const ListenerConfig& listener, int fd) {
    ProtocolWorker& worker = *protocol_worker(listener.protocol.name);
    ListenerContext context(listener, worker);
    std::unique_ptr<StreamHandler> stream;
    std::unique_ptr<DatagramHandler> datagram;
    try {
      if (is_datagram(listener.protocol)) {
        datagram = worker.protocol().datagram_handler(context);
      } else {
        stream = worker.protocol().stream_handler(context);
      }
    } catch (const std::exception& e) {
      PF_LOG_ERROR("listener %s: protocol %s: %s", listener.name.c_str(), listener.protocol.name.c_str(), e.what());
      return false;
    }
    if (!stream && !datagram) {
      PF_LOG_ERROR("listener %s: protocol \"%s\" has no handler in a worker", listener.name.c_str(),
                   listener.protocol.name.c_str());
      return false;
    }
    int rc;
    if (stream) {
      auto& tcp = tcp_listeners_.emplace_back(std::make_unique<TcpListener>(listener, std::move(stream), connections_));
      rc = tcp->start(loop_, fd);
    } else {
      auto& udp = udp_listeners_.emplace_back(std::make_unique<UdpListener>(listener, std::move(datagram), stats_));
      rc = udp->start(loop_, fd);
    }
    if (rc != 0) {
      PF_LOG_ERROR("listener %s on %s: %s", listener.name.c_str(), listener.address.to_string().c_str(),
                   uv_strerror(rc));
      return false;
    }
    return true;
  }

  // Each protocol hook runs guarded: an exception must not cross the loop's C frames.
  template <class Hook>
  void each_started_protocol(const char* what, Hook hook) {
    for (auto& p : protocols_) {
      if (!p->started) continue;
      try {
        hook(*p);
      } catch (const std::exception& e) {
        PF_LOG_ERROR("protocol %s: %s: %s", p->spec().name.c_str(), what, e.what());
      }
    }
  }

  void start_heartbeat() {
    int rc = uv_timer_init(loop_, heartbeat_.get());
    if (rc == 0) {
      heartbeat_.mark_initialized();
      rc = uv_timer_start(heartbeat_.get(), on_heartbeat, kHeartbeatIntervalMs, kHeartbeatIntervalMs);
    }
    if (rc != 0) PF_LOG_ERROR("heartbeat timer: %s", uv_strerror(rc));
  }

  static void on_heartbeat(uv_timer_t* timer) {
    auto* self = owner_of<WorkerLoop>(timer);
    self->send(ipc::Heartbeat{self->counters()});
    if (const char* path = std::getenv("PREFORKD_TEST_IPC_JUNK")) self->send_test_junk(path);
  }

  // Test hook for the master's IPC hardening tests: when the named file appears,
  // the first worker to claim it (rename to FILE.PID; only one rename succeeds)
  // writes its bytes to the IPC pipe as they are, once.
  void send_test_junk(const std::string& path) {
    if (!ipc_) return;
    std::string claimed = path + "." + std::to_string(getpid());
    if (::rename(path.c_str(), claimed.c_str()) != 0) return;  // absent, or another worker was first
    std::ifstream in(claimed, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    PF_LOG_WARN("test hook: writing %zu bytes from %s to the ipc pipe", bytes.size(), claimed.c_str());
    int rc = ipc::write_bytes(ipc_.stream(), std::move(bytes));
    if (rc != 0) PF_LOG_WARN("ipc write: %s", uv_strerror(rc));
  }

  ipc::Counters counters() const {
    ipc::Counters c{stats_.accepted, stats_.active, stats_.requests, {}};
    for (const auto& p : protocols_) p->report(c.protocol);
    // Metric names are unique in a binary (the registry checks), sorted they are
    // the one form the decoder accepts.
    std::sort(c.protocol.begin(), c.protocol.end(),
              [](const ipc::ProtocolCounter& a, const ipc::ProtocolCounter& b) { return a.name < b.name; });
    return c;
  }

  void send(const ipc::Message& message) {
    if (!ipc_) return;
    int rc = ipc::write_frame(ipc_.stream(), message);
    if (rc != 0) PF_LOG_WARN("ipc write: %s", uv_strerror(rc));
  }

  // Graceful: no new connections; every connection finishes its current unit of
  // work and closes; the process exits when the last one is gone. With linger_ms
  // the listeners keep accepting a little longer (see ipc::Retire).
  void retire(std::uint32_t linger_ms = 0) {
    if (state_ == State::retiring || state_ == State::stopped) return;
    if (state_ == State::waiting_for_start) return stop_now("retired before start");
    state_ = State::retiring;
    retiring_ = true;
    each_started_protocol("on_worker_retire", [](ProtocolWorker& p) { p.protocol().on_worker_retire(p); });
    send(ipc::Draining{counters()});
    connections_.on_empty([this] {
      if (listeners_closed_) finish();
    });
    // Before the listeners close: so that connections accepted from here on (the
    // linger, the final drain of the queue) are told at once too.
    connections_.retire_all();
    if (linger_ms == 0) {
      close_listeners();
    } else {
      PF_LOG_INFO("retiring: listeners stay open %u ms for stragglers", linger_ms);
      int rc = uv_timer_init(loop_, linger_.get());
      if (rc == 0) {
        linger_.mark_initialized();
        rc = uv_timer_start(linger_.get(), [](uv_timer_t* t) { owner_of<WorkerLoop>(t)->close_listeners(); }, linger_ms, 0);
      }
      if (rc != 0) {
        PF_LOG_ERROR("linger timer: %s", uv_strerror(rc));
        close_listeners();
      }
    }
  }

  void close_listeners() {
    if (listeners_closed_) return;
    listeners_closed_ = true;
    for (auto& l : tcp_listeners_) l->stop_accepting();
    for (auto& l : udp_listeners_) l->stop();
    linger_.reset();
    PF_LOG_INFO("retiring: %zu connection(s) to finish", connections_.size());
    if (connections_.size() == 0) finish();
  }

  void finish() {
    if (state_ == State::stopped) return;
    state_ = State::stopped;
    PF_LOG_INFO("exiting: accepted=%llu requests=%llu", static_cast<unsigned long long>(stats_.accepted),
                static_cast<unsigned long long>(stats_.requests));
    close_everything();
  }

  void stop_now(const char* why) {
    if (state_ == State::stopped) return;
    PF_LOG_INFO("stopping now (%s)", why);
    connections_.close_all();
    finish();
  }

  void fail(int code) {
    exit_code_ = code;
    stop_now("start-up failed");
  }

  // The listeners are closed, not destroyed: their handlers must outlive the
  // sessions, which go only in their connections' close callbacks, once the loop
  // has run them. Then the handlers go and the protocols' exit hooks run
  // (end_protocols), while the loop still runs, so that their own handles close.
  void close_everything() {
    connections_.on_empty(nullptr);
    connections_.close_all();
    for (auto& l : tcp_listeners_) l->close();
    for (auto& l : udp_listeners_) l->stop();
    heartbeat_.reset();
    linger_.reset();
    ipc_.reset();
    access_log::close();
    // Closing the last uv_signal_t of a signal restores its default action, which
    // for USR1 or HUP is death: a log rotation reaching a worker on its way out
    // would end it by signal instead of its own exit status. Held again, as during
    // start-up, a signal now waits and is dropped with the process.
    hold_worker_signals();
    for (auto& s : signals_) s.reset();
    if (connections_.size() == 0) return end_protocols();
    connections_.on_empty([this] { end_protocols(); });
  }

  void end_protocols() {
    connections_.on_empty(nullptr);
    for (auto& l : tcp_listeners_) l->drop_handler();
    for (auto& l : udp_listeners_) l->drop_handler();
    each_started_protocol("on_worker_exit", [](ProtocolWorker& p) { p.protocol().on_worker_exit(p); });
    for (auto& p : protocols_) p->started = false;
  }

  void reopen_log() {
    if (state_ == State::waiting_for_start) return;
    std::string error;
    if (!log::open(config_.log.error_log, &error)) PF_LOG_ERROR("reopen log: %s", error.c_str());
    if (!access_log::reopen(&error)) PF_LOG_ERROR("reopen log: %s", error.c_str());
    // In the new file: tells logrotate scripts (and tests) that this worker switched.
    PF_LOG_INFO("logs reopened");
  }

  uv_loop_t* loop_;
  const bool spare_;
  const std::vector<int> passed_fds_;
  State state_ = State::waiting_for_start;
  int exit_code_ = 0;
  Config config_;
  WorkerStats stats_;
  // Protocols with listeners here; declared before the listeners, whose handlers
  // may hold on to their Worker, so that they are destroyed after those.
  std::vector<std::unique_ptr<ProtocolWorker>> protocols_;
  ConnectionSet connections_;
  std::vector<std::unique_ptr<TcpListener>> tcp_listeners_;
  std::vector<std::unique_ptr<UdpListener>> udp_listeners_;
  std::vector<UvHandle<uv_signal_t>> signals_;
  UvHandle<uv_pipe_t> ipc_;
  UvHandle<uv_timer_t> heartbeat_;
  UvHandle<uv_timer_t> linger_;
  bool listeners_closed_ = false;
  bool retiring_ = false;  // what Worker::retiring() reports
  ipc::Decoder decoder_;
};

// A spare idles here, blocked reading its IPC pipe with nothing else open, until
// the master hands it its listening sockets (then 1). The master's end of the
// pipe closing (it is gone): 0, it exits quietly; an error: -1. TERM, INT and
// QUIT act by default meanwhile (it has nothing to finish); the other signals
// stay held as in any starting worker.
int wait_as_spare(int ipc_fd, std::vector<int>* fds) {
  sigset_t stop;
  sigemptyset(&stop);
  for (int signum : {SIGTERM, SIGINT, SIGQUIT}) sigaddset(&stop, signum);
  sigprocmask(SIG_UNBLOCK, &stop, nullptr);
  int rc = receive_fds(ipc_fd, fds);
  sigprocmask(SIG_BLOCK, &stop, nullptr);
  if (rc < 0) {
    PF_LOG_ERROR("spare: receiving the listening sockets: %s", std::strerror(-rc));
    return -1;
  }
  return rc;
}

}  // namespace

int run_worker(int ipc_fd, pid_t master_pid, bool spare) {
  log::set_identity("worker");
  // SIGTERM (not SIGKILL) so the worker still closes its sockets in order.
  if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) PF_LOG_WARN("prctl(PR_SET_PDEATHSIG): %s", strerror(errno));
  // The master may have died before prctl took effect.
  if (getppid() != master_pid) {
    PF_LOG_ERROR("master %d is gone; not starting", static_cast<int>(master_pid));
    return 1;
  }
  std::signal(SIGPIPE, SIG_IGN);
  std::vector<int> passed_fds;
  if (spare) {
    if (int rc = wait_as_spare(ipc_fd, &passed_fds); rc <= 0) return rc == 0 ? 0 : 1;
  }
  // Test hook for the start-up signal tests: widens the time in which the
  // worker's signals are held and its handlers do not exist yet (for a spare:
  // once it has been started).
  if (const char* ms = std::getenv("PREFORKD_TEST_WORKER_START_DELAY_MS")) {
    PF_LOG_WARN("test hook: starting %s ms late", ms);
    ::usleep(static_cast<useconds_t>(std::strtoul(ms, nullptr, 10) * 1000));
  }
  uv_loop_t loop;
  int rc = uv_loop_init(&loop);
  if (rc != 0) {
    PF_LOG_ERROR("uv_loop_init: %s", uv_strerror(rc));
    return 1;
  }
  int code;
  {
    WorkerLoop worker(&loop, spare, std::move(passed_fds));
    code = worker.run(ipc_fd);
  }
  // Let every close callback run; a handle still open here is a leak.
  uv_run(&loop, UV_RUN_DEFAULT);
  rc = uv_loop_close(&loop);
  if (rc != 0) {
    PF_LOG_ERROR("uv_loop_close: %s (a handle leaked)", uv_strerror(rc));
    if (code == 0) code = 3;
  }
  return code;
}

}  // namespace preforkd
