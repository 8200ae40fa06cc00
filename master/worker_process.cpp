// Spawning workers with uv_spawn: fork+exec of our own image gives each worker a
// clean process (no inherited master loop, signal handlers or fds beyond the ones
// named here), and libuv reaps it on SIGCHLD and calls on_exit.
#include "master/worker_process.hpp"

#include <unistd.h>

#include <cstring>
#include <memory>

#include "common/fd_passing.hpp"
#include "common/ipc_channel.hpp"
#include "common/log.hpp"
#include "common/spare_args.hpp"

namespace preforkd {

std::vector<std::int32_t> inherit_fds(std::vector<uv_stdio_container_t>& stdio, int first,
                                      const std::vector<int>& fds) {
  std::vector<std::int32_t> child_fds;
  stdio.resize(static_cast<std::size_t>(first) + fds.size());
  for (std::size_t i = 0; i < fds.size(); ++i) {
    stdio[first + i].flags = UV_INHERIT_FD;
    stdio[first + i].data.fd = fds[i];
    child_fds.push_back(static_cast<std::int32_t>(first + i));
  }
  return child_fds;
}

WorkerProcess::WorkerProcess(uv_loop_t* loop, Events& events)
    : loop_(loop), events_(events), process_(this), pipe_(this) {}

pid_t WorkerProcess::spawn(ipc::Start start, const std::vector<int>& listener_fds) {
  std::string slot = std::to_string(start.slot);
  std::string generation = std::to_string(start.generation);
  // argv[0] is the title ps shows; slot and generation follow for the operator.
  pid_t pid = launch({"preforkd: worker", "--worker", "--slot", slot.c_str(), "--generation", generation.c_str()},
                     listener_fds, &start);
  if (pid > 0) send(start);
  return pid;
}

pid_t WorkerProcess::spawn_spare() {
  // The title says what it is until it is started (the worker rewrites it then,
  // within these arguments' bytes: see spare_args.hpp), so that ps, and the
  // integration tests, can tell spares from workers.
  return launch(std::vector<const char*>(std::begin(kSpareArgs), std::end(kSpareArgs)), {}, nullptr);
}

int WorkerProcess::start(ipc::Start start, const std::vector<int>& listener_fds) {
  uv_os_fd_t fd = -1;
  int rc = pipe_ ? uv_fileno(pipe_.handle(), &fd) : UV_EBADF;
  // Nothing was ever written to a spare's pipe, so this byte is the first it reads.
  if (rc == 0) rc = send_fds(fd, listener_fds);
  if (rc != 0) {
    PF_LOG_ERROR("spare worker %d: handing over %zu socket(s): %s", static_cast<int>(pid_), listener_fds.size(),
                 std::strerror(-rc));
    return rc;
  }
  // Its own numbers for the sockets are known only once it has received them.
  start.listener_fds.clear();
  send(start);
  return 0;
}

pid_t WorkerProcess::launch(const std::vector<const char*>& fixed_args, const std::vector<int>& fds,
                            ipc::Start* start) {
  // A plain pipe, not an ipc one: listener fds reach the worker by inheritance
  // (below) or as one SCM_RIGHTS byte (start()), never through libuv, so the
  // master accepts none.
  int rc = uv_pipe_init(loop_, pipe_.get(), /*ipc=*/0);
  if (rc != 0) {
    PF_LOG_ERROR("uv_pipe_init: %s", uv_strerror(rc));
    return rc;
  }
  pipe_.mark_initialized();

  std::string master_pid = std::to_string(getpid());
  std::vector<const char*> args = fixed_args;
  args.insert(args.end(), {"--master-pid", master_pid.c_str(), nullptr});
  constexpr int kFirstListenerFd = 4;
  std::vector<uv_stdio_container_t> stdio(kFirstListenerFd);
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = UV_INHERIT_FD;
  stdio[1].data.fd = STDOUT_FILENO;
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = STDERR_FILENO;
  stdio[3].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_READABLE_PIPE | UV_WRITABLE_PIPE);
  stdio[3].data.stream = pipe_.stream();
  std::vector<std::int32_t> child_fds = inherit_fds(stdio, kFirstListenerFd, fds);
  if (start) start->listener_fds = std::move(child_fds);

  uv_process_options_t options{};
  options.file = kOwnImage;
  options.args = const_cast<char**>(args.data());
  options.exit_cb = on_exit;
  options.stdio = stdio.data();
  options.stdio_count = static_cast<int>(stdio.size());

  rc = uv_spawn(loop_, process_.get(), &options);
  // uv_spawn initialises the handle even when it fails, so it must be closed either way.
  process_.mark_initialized();
  if (rc != 0) {
    PF_LOG_ERROR("uv_spawn %s: %s", kOwnImage, uv_strerror(rc));
    return rc;
  }
  pid_ = process_.get()->pid;
  if ((rc = uv_read_start(pipe_.stream(), on_alloc, on_read)) != 0)
    PF_LOG_ERROR("worker %d: uv_read_start(ipc): %s", static_cast<int>(pid_), uv_strerror(rc));
  return pid_;
}

void WorkerProcess::send(const ipc::Message& message) {
  if (!pipe_) return;
  int rc = ipc::write_frame(pipe_.stream(), message);
  if (rc != 0) PF_LOG_WARN("worker %d: ipc write: %s", static_cast<int>(pid_), uv_strerror(rc));
}

void WorkerProcess::on_exit(uv_process_t* process, int64_t status, int signal) {
  auto* self = owner_of<WorkerProcess>(process);
  if (!self) return;
  // Last statement: the owner may destroy us inside this call.
  self->events_.on_worker_exit(self->pid_, signal ? -1 : static_cast<int>(status), signal);
}

void WorkerProcess::on_alloc(uv_handle_t*, size_t, uv_buf_t* buf) {
  static char buffer[16 * 1024];
  *buf = uv_buf_init(buffer, sizeof buffer);
}

void WorkerProcess::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* self = owner_of<WorkerProcess>(stream);
  if (!self) return;
  if (nread < 0) {
    // EOF or error: the worker is exiting; its process exit will follow.
    uv_read_stop(stream);
    return;
  }
  self->decoder_.feed(std::span<const char>(buf->base, static_cast<std::size_t>(nread)));
  std::string error;
  while (auto message = self->decoder_.next(&error)) self->events_.on_worker_message(self->pid_, *message);
  if (self->decoder_.failed()) {
    uv_read_stop(stream);
    self->events_.on_worker_protocol_error(self->pid_, error);
  }
}

}  // namespace preforkd
