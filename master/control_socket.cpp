// ControlServer: the socket file, accepting, one bounded request line per
// connection, asynchronous replies.
#include "master/control_socket.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "common/log.hpp"
#include "master/control_protocol.hpp"
#include "master/request_reads.hpp"

namespace preforkd {
namespace {

// A request is one short line; a client that has not sent it by then is dropped,
// so idle connections cannot pile up in the master.
constexpr std::uint64_t kRequestTimeoutMs = 5'000;
// A client that stops reading its answer is dropped after this.
constexpr std::uint64_t kWriteTimeoutMs = 10'000;
// Beyond this many open connections a new one is closed at once.
constexpr std::size_t kMaxConnections = 64;
// What a client may send after its request (nothing is expected) before it is dropped.
constexpr std::size_t kMaxTrailingBytes = 64 * 1024;

bool fill_address(const std::string& path, sockaddr_un* address, std::string* error) {
  *address = sockaddr_un{};
  address->sun_family = AF_UNIX;
  if (path.size() >= sizeof address->sun_path) {
    *error = path + ": too long for a Unix socket path";
    return false;
  }
  std::memcpy(address->sun_path, path.c_str(), path.size() + 1);
  return true;
}

// Whether a process accepts connections at `path` (a master still running there).
bool someone_answers(const std::string& path) {
  sockaddr_un address{};
  std::string ignored;
  if (!fill_address(path, &address, &ignored)) return false;
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return false;
  // Non-blocking, so that a live master with a full backlog cannot hold up our
  // start: EAGAIN is that master; a stale file refuses (ECONNREFUSED).
  bool answers = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 || errno == EAGAIN;
  ::close(fd);
  return answers;
}

}  // namespace

struct ControlServer::Connection {
  Connection(ControlServer& server, ClientId id) : server(server), id(id), pipe(this), timer(this) {}

  void on_bytes(const char* data, std::size_t length) {
    if (requested) {
      trailing += length;
      if (trailing > kMaxTrailingBytes) server.drop(this, /*tell_handler=*/true);
      return;
    }
    buffer.append(data, length);
    auto end = buffer.find('\n');
    if (end == std::string::npos) {
      if (buffer.size() > control::kMaxRequestBytes) reject("request longer than " +
                                                            std::to_string(control::kMaxRequestBytes) + " bytes");
      return;
    }
    requested = true;
    uv_timer_stop(timer.get());
    std::string line = buffer.substr(0, end);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    buffer.clear();
    buffer.shrink_to_fit();
    // The handler may finish (and so destroy) this connection: nothing of it is
    // touched after the call.
    Handler& handler = server.handler_;
    handler.on_request(id, line);
  }

  // start_request_reads' callbacks.
  void on_deadline() { reject("no request within 5 s"); }
  void on_read_end(ssize_t nread, uv_stream_t* stream) {
    if (nread == UV_EOF && requested) {
      // The client has said all it will (a shutdown after its request, as `socat`
      // does); it may still be reading, so the answer still goes out.
      uv_read_stop(stream);
      return;
    }
    // An error, or EOF before a request: the client is gone.
    server.drop(this, /*tell_handler=*/!finishing);
  }

  void reject(const std::string& why) {
    requested = true;
    ControlServer& s = server;
    ClientId client = id;
    s.send(client, control::error_reply(why));
    s.finish(client);
  }

  struct WriteRequest {
    uv_write_t req{};
    std::string bytes;
  };

  static void on_written(uv_write_t* req, int status) {
    std::unique_ptr<WriteRequest> request(reinterpret_cast<WriteRequest*>(req));
    auto* self = owner_of<Connection>(req->handle);
    if (!self) return;  // closed meanwhile; the write was cancelled
    --self->pending_writes;
    if (status != 0) return self->server.drop(self, /*tell_handler=*/true);
    if (self->finishing && self->pending_writes == 0) self->server.drop(self, /*tell_handler=*/false);
  }

  ControlServer& server;
  ClientId id;
  UvHandle<uv_pipe_t> pipe;
  UvHandle<uv_timer_t> timer;
  std::string buffer;
  std::size_t trailing = 0;
  std::size_t pending_writes = 0;
  bool requested = false;
  bool finishing = false;
  char read_buffer[4096];
};

ControlServer::ControlServer(uv_loop_t* loop, Handler& handler) : loop_(loop), handler_(handler) {}

ControlServer::~ControlServer() { close(); }

bool ControlServer::listen(const std::string& path, std::string* error) {
  sockaddr_un address{};
  if (!fill_address(path, &address, error)) return false;
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      *error = path + ": exists and is not a socket";
      return false;
    }
    if (someone_answers(path)) {
      *error = path + ": another process answers there (a master with another pid file?)";
      return false;
    }
    // Left by a master that is gone (killed, crashed): ours to replace.
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      *error = "unlink stale " + path + ": " + std::strerror(errno);
      return false;
    }
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    *error = std::string("socket(AF_UNIX): ") + std::strerror(errno);
    return false;
  }
  auto fail = [&](const std::string& what) {
    *error = what + ": " + std::strerror(errno);
    ::close(fd);
    return false;
  };
  // Linux creates the file with the socket inode's mode: set before bind, the file
  // never exists with looser permissions than 0600.
  if (::fchmod(fd, S_IRUSR | S_IWUSR) != 0) return fail("fchmod control socket");
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) return fail("bind " + path);
  if (::lstat(path.c_str(), &st) != 0) {
    int saved = errno;
    ::close(fd);
    *error = "stat " + path + ": " + std::strerror(saved);
    return false;
  }
  device_ = st.st_dev;
  inode_ = st.st_ino;
  path_ = path;
  // Belt and braces for file systems that ignore the socket's own mode.
  if ((st.st_mode & 0777) != (S_IRUSR | S_IWUSR) && ::chmod(path.c_str(), S_IRUSR | S_IWUSR) != 0) {
    int saved = errno;
    ::unlink(path.c_str());
    ::close(fd);
    *error = "chmod " + path + ": " + std::strerror(saved);
    return false;
  }
  listener_ = UvHandle<uv_pipe_t>(this);
  int rc = uv_pipe_init(loop_, listener_.get(), /*ipc=*/0);
  if (rc == 0) {
    listener_.mark_initialized();
    rc = uv_pipe_open(listener_.get(), fd);
    if (rc != 0) ::close(fd);
  } else {
    ::close(fd);
  }
  if (rc == 0) rc = uv_listen(listener_.stream(), 256, on_connection);
  if (rc != 0) {
    *error = "control socket " + path + ": " + uv_strerror(rc);
    listener_.reset();
    ::unlink(path.c_str());
    return false;
  }
  return true;
}

bool ControlServer::still_ours(const std::string& path) const {
  struct stat st {};
  return inode_ != 0 && ::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == device_ &&
         st.st_ino == inode_;
}

void ControlServer::close() {
  listener_.reset();
  connections_.clear();  // each connection's handles close themselves
  if (path_.empty()) return;
  // A successor's socket at our path (or a stranger's) is left alone.
  for (const std::string& candidate : {path_, path_ + ".oldbin"})
    if (still_ours(candidate)) ::unlink(candidate.c_str());
  path_.clear();
}

bool ControlServer::move_aside(std::string* error) {
  if (path_.empty()) return true;
  std::string aside = path_ + ".oldbin";
  if (::rename(path_.c_str(), aside.c_str()) != 0) {
    *error = "rename " + path_ + " to " + aside + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

void ControlServer::move_back() {
  if (path_.empty()) return;
  std::string aside = path_ + ".oldbin";
  if (!still_ours(aside)) return;
  if (::rename(aside.c_str(), path_.c_str()) != 0)
    PF_LOG_ERROR("rename %s back to %s: %s", aside.c_str(), path_.c_str(), std::strerror(errno));
}

bool ControlServer::send(ClientId client, std::string line) {
  auto it = connections_.find(client);
  if (it == connections_.end()) return false;
  Connection* c = it->second.get();
  auto request = std::make_unique<Connection::WriteRequest>();
  request->bytes = std::move(line);
  uv_buf_t buf = uv_buf_init(request->bytes.data(), static_cast<unsigned>(request->bytes.size()));
  int rc = uv_write(&request->req, c->pipe.stream(), &buf, 1, Connection::on_written);
  if (rc != 0) {
    PF_LOG_DEBUG("control: write: %s", uv_strerror(rc));
    drop(c, /*tell_handler=*/true);
    return false;
  }
  request.release();  // owned by the write until on_written
  ++c->pending_writes;
  return true;
}

void ControlServer::finish(ClientId client) {
  auto it = connections_.find(client);
  if (it == connections_.end()) return;
  Connection* c = it->second.get();
  c->finishing = true;
  if (c->pending_writes == 0) return drop(c, /*tell_handler=*/false);
  // The answer is on its way; a client that does not read it is not waited for.
  uv_timer_start(
      c->timer.get(),
      [](uv_timer_t* t) {
        if (auto* conn = owner_of<Connection>(t)) conn->server.drop(conn, /*tell_handler=*/false);
      },
      kWriteTimeoutMs, 0);
}

void ControlServer::drop(Connection* connection, bool tell_handler) {
  ClientId id = connection->id;
  connections_.erase(id);  // closes its handles
  if (tell_handler) handler_.on_client_gone(id);
}

void ControlServer::on_connection(uv_stream_t* stream, int status) {
  auto* self = owner_of<ControlServer>(stream);
  if (!self) return;
  if (status != 0) {
    PF_LOG_WARN("control: accept: %s", uv_strerror(status));
    return;
  }
  ClientId id = self->next_id_++;
  auto connection = std::make_unique<Connection>(*self, id);
  Connection* c = connection.get();
  int rc = uv_pipe_init(self->loop_, c->pipe.get(), /*ipc=*/0);
  if (rc == 0) {
    c->pipe.mark_initialized();
    rc = uv_accept(stream, c->pipe.stream());
  }
  if (rc != 0) {
    PF_LOG_WARN("control: accept: %s", uv_strerror(rc));
    return;  // the connection's destructor closes what was opened
  }
  if (self->connections_.size() >= kMaxConnections) {
    PF_LOG_WARN("control: %zu connections open; closing a new one", self->connections_.size());
    return;
  }
  // Mode 0600 already keeps others out; this holds even if someone loosened it.
  uv_os_fd_t fd = -1;
  ucred peer{};
  socklen_t length = sizeof peer;
  if (uv_fileno(c->pipe.handle(), &fd) != 0 || ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &length) != 0 ||
      (peer.uid != 0 && peer.uid != ::geteuid())) {
    PF_LOG_WARN("control: refused a client of uid %u", static_cast<unsigned>(peer.uid));
    return;
  }
  rc = start_request_reads(self->loop_, *c, c->pipe.stream(), kRequestTimeoutMs);
  if (rc != 0) {
    PF_LOG_WARN("control: connection set-up: %s", uv_strerror(rc));
    return;
  }
  self->connections_[id] = std::move(connection);
}

}  // namespace preforkd
