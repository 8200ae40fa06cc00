// Integration-test harness implementation: processes, /proc inspection, clients.
#include "tests/integration/harness.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

namespace itest {
namespace {

// Orphaned workers come to us, not to init, so tests can reap and count them;
// a client writing to a closed socket must fail the test, not kill the process.
const bool g_process_setup = [] {
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  signal(SIGPIPE, SIG_IGN);
  return true;
}();

std::string make_temp_dir() {
  char tmpl[] = "/tmp/preforkd-itest-XXXXXX";
  char* dir = mkdtemp(tmpl);
  if (!dir) std::abort();
  return dir;
}

void set_timeouts(int fd, Millis timeout) {
  timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

bool fill_address(const std::string& host, int port, sockaddr_storage* ss, socklen_t* len) {
  std::memset(ss, 0, sizeof *ss);
  auto* v4 = reinterpret_cast<sockaddr_in*>(ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(ss);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    *len = sizeof *v4;
    return true;
  }
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    *len = sizeof *v6;
    return true;
  }
  return false;
}

}  // namespace

int free_port(int family) {
  // Ask the kernel for an ephemeral TCP port, then check UDP can have it too.
  for (int attempt = 0; attempt < 50; ++attempt) {
    int tcp = socket(family, SOCK_STREAM, 0);
    sockaddr_storage ss{};
    socklen_t len = 0;
    fill_address(family == AF_INET ? "127.0.0.1" : "::1", 0, &ss, &len);
    if (bind(tcp, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
      close(tcp);
      continue;
    }
    getsockname(tcp, reinterpret_cast<sockaddr*>(&ss), &len);
    int udp = socket(family, SOCK_DGRAM, 0);
    bool ok = bind(udp, reinterpret_cast<sockaddr*>(&ss), len) == 0;
    close(udp);
    close(tcp);
    int port = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                       : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
    if (ok) return port;
  }
  return 0;
}

bool ipv6_loopback_available() {
  int fd = socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_storage ss{};
  socklen_t len = 0;
  fill_address("::1", 0, &ss, &len);
  bool ok = bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0;
  close(fd);
  return ok;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_file(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
}

int run_command(const std::string& command, std::string* output) {
  std::string full = command + " 2>&1";
  FILE* pipe = popen(full.c_str(), "r");
  if (!pipe) return -1;
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) text.append(buf, n);
  int status = pclose(pipe);
  if (output) *output = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool process_gone(pid_t pid) {
  waitpid(pid, nullptr, WNOHANG);  // reap it if it is ours (directly or as subreaper)
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return true;
  auto close_paren = stat.rfind(')');
  return close_paren != std::string::npos && close_paren + 2 < stat.size() && stat[close_paren + 2] == 'Z';
}

bool wait_gone(pid_t pid, Millis timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (process_gone(pid)) return true;
    std::this_thread::sleep_for(10ms);
  }
  return process_gone(pid);
}

namespace {

enum class ChildKind { worker, spare, neither };

// What a child of `parent` is, from its command line: a pre-spawned spare
// (prespawn: "preforkd: spare" until it is started, when it rewrites it), a
// process between fork and exec (the parent's command line), one whose memory
// is already gone (exiting: empty), or else a worker.
ChildKind kind_of(const std::string& pid, const std::string& parent_cmdline) {
  std::string cmdline = read_file("/proc/" + pid + "/cmdline");
  if (cmdline.rfind(std::string("preforkd: spare\0", 16), 0) == 0) return ChildKind::spare;
  if (cmdline.empty() || cmdline == parent_cmdline) return ChildKind::neither;
  return ChildKind::worker;
}

// Live children of `parent`: the spares among them (spares) or the others.
std::vector<pid_t> live_children(pid_t parent, ChildKind wanted) {
  std::vector<pid_t> result;
  const std::string parent_cmdline = read_file("/proc/" + std::to_string(parent) + "/cmdline");
  DIR* proc = opendir("/proc");
  if (!proc) return result;
  while (dirent* entry = readdir(proc)) {
    char* end = nullptr;
    long pid = std::strtol(entry->d_name, &end, 10);
    if (*end != '\0' || pid <= 0) continue;
    std::string stat = read_file(std::string("/proc/") + entry->d_name + "/stat");
    auto close_paren = stat.rfind(')');
    if (close_paren == std::string::npos) continue;
    char state = 0;
    long ppid = 0;
    if (std::sscanf(stat.c_str() + close_paren + 1, " %c %ld", &state, &ppid) != 2) continue;
    if (ppid != parent || state == 'Z') continue;
    if (kind_of(entry->d_name, parent_cmdline) == wanted) result.push_back(static_cast<pid_t>(pid));
  }
  closedir(proc);
  return result;
}

}  // namespace

std::vector<pid_t> children_of(pid_t parent) { return live_children(parent, ChildKind::worker); }

std::vector<pid_t> spares_of(pid_t parent) { return live_children(parent, ChildKind::spare); }

std::vector<unsigned long> socket_inodes(const std::string& proc_net_file, int port, bool listening_only) {
  std::vector<unsigned long> inodes;
  std::istringstream in(read_file(proc_net_file));
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state, queues, timer, retrans, uid, timeout;
    unsigned long inode = 0;
    fields >> slot >> local >> remote >> state >> queues >> timer >> retrans >> uid >> timeout >> inode;
    auto colon = local.rfind(':');
    if (colon == std::string::npos) continue;
    int local_port = static_cast<int>(std::strtol(local.c_str() + colon + 1, nullptr, 16));
    // 0A is TCP_LISTEN; 07 is TCP_CLOSE, the state of a bound, unconnected UDP socket.
    if (local_port == port && (!listening_only || state == "0A")) inodes.push_back(inode);
  }
  return inodes;
}

std::vector<unsigned long> socket_inodes_of(pid_t pid) {
  std::vector<unsigned long> inodes;
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* fds = opendir(dir.c_str());
  if (!fds) return inodes;
  while (dirent* entry = readdir(fds)) {
    char target[256];
    ssize_t n = readlink((dir + "/" + entry->d_name).c_str(), target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    unsigned long inode = 0;
    if (std::sscanf(target, "socket:[%lu]", &inode) == 1) inodes.push_back(inode);
  }
  closedir(fds);
  return inodes;
}

// --- Preforkd --------------------------------------------------------------------

Preforkd::Preforkd(ServerOptions options) : options_(std::move(options)) {
  dir_ = make_temp_dir();
  root_ = dir_ + "/www";
  mkdir(root_.c_str(), 0755);
  config_path_ = dir_ + "/preforkd.toml";
  pid_file_ = dir_ + "/preforkd.pid";
  log_path_ = dir_ + "/preforkd.log";
  http_port_ = free_port();
  echo_port_ = free_port();
  std::ostringstream config;
  config << "workers = " << options_.workers << "\n"
         << "pid_file = \"" << pid_file_ << "\"\n"
         << "graceful_timeout = " << options_.graceful_timeout << "\n"
         << "worker_timeout = " << options_.worker_timeout << "\n";
  if (!options_.user.empty()) config << "user = \"" << options_.user << "\"\n";
  config << options_.top_config << "\n"
         << "[log]\nlevel = \"info\"\n" << options_.log_config;
  if (options_.error_log_to_file) config << "error_log = \"" << log_path_ << "\"\n";
  config << "\n";
  if (!options_.listeners.empty()) {
    config << options_.listeners << "\n";
  } else {
    config << "[[listen]]\nname = \"web\"\naddress = \"127.0.0.1:" << http_port_
           << "\"\nprotocol = \"http\"\nroot = \"www\"\n" << options_.web_config << "\n"
           << "[[listen]]\nname = \"echo\"\naddress = \"127.0.0.1:" << echo_port_
           << "\"\nprotocol = \"tcp-echo\"\n" << options_.echo_config << "\n"
           << "[[listen]]\nname = \"echo-udp\"\naddress = \"127.0.0.1:" << echo_port_
           << "\"\nprotocol = \"udp-echo\"\n" << options_.udp_config << "\n";
  }
  if (options_.ipv6) {
    http6_port_ = free_port(AF_INET6);
    echo6_port_ = free_port(AF_INET6);
    config << "\n[[listen]]\nname = \"web6\"\naddress = \"[::1]:" << http6_port_
           << "\"\nprotocol = \"http\"\nroot = \"www\"\n\n"
           << "[[listen]]\nname = \"echo6\"\naddress = \"[::1]:" << echo6_port_
           << "\"\nprotocol = \"tcp-echo\"\n\n"
           << "[[listen]]\nname = \"echo6-udp\"\naddress = \"[::1]:" << echo6_port_
           << "\"\nprotocol = \"udp-echo\"\n";
  }
  config << options_.extra_config;
  write_file(config_path_, config.str());
  write_file(root_ + "/index.html", "<html><body>index</body></html>\n");
  write_file(root_ + "/hello.txt", "hello from preforkd\n");
}

Preforkd::~Preforkd() {
  // Sanitizer reports of the master or any worker land in the log: each is a bug.
  std::string text = log();
  for (const char* marker : {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "uv_loop_close"})
    if (text.find(marker) != std::string::npos) ADD_FAILURE() << "preforkd logged \"" << marker << "\":\n" << text;
  std::vector<pid_t> workers = master_ > 0 ? worker_pids() : std::vector<pid_t>{};
  if (master_ > 0) {
    // The whole process group: master, workers, and a master that replaced it (USR2).
    kill(-group_, SIGKILL);
    if (!reaped_) {
      kill(master_, SIGKILL);
      waitpid(master_, nullptr, 0);
    }
  }
  for (pid_t w : workers) {
    kill(w, SIGKILL);
    wait_gone(w, 2s);
  }
  run_command("rm -rf '" + dir_ + "'");
}

bool Preforkd::start(Millis timeout, std::string* why) {
  pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    setpgid(0, 0);
    int log = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    int null = open("/dev/null", O_RDONLY);
    dup2(null, STDIN_FILENO);
    dup2(log, STDOUT_FILENO);
    dup2(log, STDERR_FILENO);
    // Nothing of the test process (listening sockets of other tests...) leaks in.
    for (int fd = 3; fd < 1024; ++fd) close(fd);
    if (!options_.crash_if_exists.empty()) setenv("PREFORKD_TEST_CRASH_IF_EXISTS", options_.crash_if_exists.c_str(), 1);
    if (!options_.rlimit_nofile.empty()) setenv("PREFORKD_TEST_RLIMIT_NOFILE", options_.rlimit_nofile.c_str(), 1);
    if (!options_.ipc_junk.empty()) setenv("PREFORKD_TEST_IPC_JUNK", options_.ipc_junk.c_str(), 1);
    std::string binary = options_.binary.empty() ? PREFORKD_BINARY : options_.binary;
    execl(binary.c_str(), "preforkd", "-c", config_path_.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  setpgid(pid, pid);  // also from here, so the group exists whichever runs first
  master_ = group_ = pid;
  std::string needle = "all " + std::to_string(options_.workers) + " workers ready";
  if (wait_log(needle, timeout)) return true;
  if (why) *why = "no \"" + needle + "\" within the timeout; log:\n" + log();
  return false;
}

bool Preforkd::signal(int signum) const { return master_ > 0 && kill(master_, signum) == 0; }

std::optional<int> Preforkd::wait_exit(Millis timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    pid_t r = waitpid(master_, &status, WNOHANG);
    if (r == master_) {
      reaped_ = true;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(10ms);
  }
  return std::nullopt;
}

bool Preforkd::wait_log(const std::string& needle, Millis timeout, std::size_t count) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  do {
    std::string text = log();
    std::size_t found = 0;
    for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) ++found;
    if (found >= count) return true;
    std::this_thread::sleep_for(10ms);
  } while (std::chrono::steady_clock::now() < deadline);
  return false;
}

bool Preforkd::wait_workers(std::size_t n, Millis timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  do {
    if (worker_pids().size() == n) return true;
    std::this_thread::sleep_for(10ms);
  } while (std::chrono::steady_clock::now() < deadline);
  return false;
}

void Preforkd::set_workers(int workers) {
  std::string config = read_file(config_path_);
  auto start = config.find("workers = ");
  auto end = config.find('\n', start);
  config.replace(start, end - start, "workers = " + std::to_string(workers));
  write_file(config_path_, config);
}

std::optional<std::string> wait_closed(int fd, Millis timeout) {
  std::string got;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[65536];
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 20) <= 0) continue;
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return got;
    if (n > 0) got.append(buf, static_cast<std::size_t>(n));
  }
  return std::nullopt;
}

double Preforkd::master_cpu_seconds() const { return cpu_seconds(master_); }

std::string proc_stat_field(pid_t pid, int n) {
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  auto close_paren = stat.rfind(')');  // the command name may contain spaces and ')'
  if (close_paren == std::string::npos) return "";
  std::istringstream fields(stat.substr(close_paren + 2));
  std::string field;
  for (int i = 3; i <= n; ++i)
    if (!(fields >> field)) return "";
  return field;
}

double cpu_seconds(pid_t pid) {
  std::string utime = proc_stat_field(pid, 14), stime = proc_stat_field(pid, 15);
  if (utime.empty() || stime.empty()) return -1;
  return static_cast<double>(std::stoul(utime) + std::stoul(stime)) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

bool reload_and_scale(Preforkd& server, int workers, int reloads, std::string* why) {
  auto fail = [&](const std::string& what) {
    *why = what + "\n" + server.log();
    return false;
  };
  std::size_t done = count_of(server.log(), "retiring generation");
  for (int i = 0; i < reloads; ++i) {
    if (!server.signal(SIGHUP)) return fail("HUP failed");
    if (!server.wait_log("retiring generation", 10s, done + 1)) return fail("reload " + std::to_string(i + 1) + " did not complete");
    done = count_of(server.log(), "retiring generation");
  }
  if (!server.signal(SIGTTIN) || !server.wait_workers(static_cast<std::size_t>(workers) + 1, 10s))
    return fail("TTIN: no worker added");
  if (!server.signal(SIGTTOU) || !server.wait_workers(static_cast<std::size_t>(workers), 15s))
    return fail("TTOU: no worker removed");
  return true;
}

int Preforkd::run_cli(const std::string& args, std::string* output) const {
  return run_command((options_.binary.empty() ? std::string(PREFORKD_BINARY) : options_.binary) + " -c '" + config_path_ + "' " + args, output);
}

// --- Clients ---------------------------------------------------------------------

int connect_tcp(const std::string& host, int port, Millis timeout, int receive_buffer) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (!fill_address(host, port, &ss, &len)) return -1;
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  set_timeouts(fd, timeout);
  if ((receive_buffer > 0 &&
       setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer) != 0) ||
      connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool send_all(int fd, const std::string& bytes) {
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

std::string read_until_close(int fd, Millis timeout) {
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[65536];
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, 50);
    if (r <= 0) continue;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

std::string HttpResponse::header(const std::string& name) const {
  std::istringstream in(head);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    auto colon = line.find(':');
    if (colon == std::string::npos || colon != name.size()) continue;
    if (strncasecmp(line.c_str(), name.c_str(), name.size()) != 0) continue;
    auto value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    return value;
  }
  return "";
}

std::optional<HttpResponse> read_response(int fd, std::string* carry, bool head_request, Millis timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string& buffer = *carry;
  char chunk[65536];
  auto fill = [&]() {
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      ssize_t n = recv(fd, chunk, sizeof chunk, 0);
      if (n <= 0) return false;
      buffer.append(chunk, static_cast<std::size_t>(n));
      return true;
    }
    return false;
  };
  std::size_t end;
  while ((end = buffer.find("\r\n\r\n")) == std::string::npos)
    if (!fill()) return std::nullopt;
  HttpResponse response;
  response.head = buffer.substr(0, end + 2);
  if (std::sscanf(response.head.c_str(), "HTTP/1.%*d %d", &response.status) != 1) return std::nullopt;
  std::size_t length = 0;
  std::string cl = response.header("Content-Length");
  if (!cl.empty()) length = std::stoul(cl);
  if (head_request || response.status == 304) length = 0;
  while (buffer.size() < end + 4 + length)
    if (!fill()) return std::nullopt;
  response.body = buffer.substr(end + 4, length);
  buffer.erase(0, end + 4 + length);
  return response;
}

std::optional<HttpResponse> http_get(int port, const std::string& path, const std::string& extra_headers,
                                     const std::string& method, const std::string& host) {
  int fd = connect_tcp(host, port);
  if (fd < 0) return std::nullopt;
  std::string request = method + " " + path + " HTTP/1.1\r\nHost: test\r\nConnection: close\r\n" +
                        extra_headers + "\r\n";
  std::optional<HttpResponse> response;
  std::string carry;
  if (send_all(fd, request)) response = read_response(fd, &carry, method == "HEAD");
  close(fd);
  return response;
}

std::optional<std::string> udp_roundtrip(const std::string& host, int port, const std::string& payload,
                                         Millis timeout) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (!fill_address(host, port, &ss, &len)) return std::nullopt;
  int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  set_timeouts(fd, timeout);
  std::optional<std::string> answer;
  if (sendto(fd, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&ss), len) ==
      static_cast<ssize_t>(payload.size())) {
    std::string buf(65536, '\0');
    ssize_t n = recv(fd, buf.data(), buf.size(), 0);
    if (n >= 0) answer = buf.substr(0, static_cast<std::size_t>(n));
  }
  close(fd);
  return answer;
}

}  // namespace itest
