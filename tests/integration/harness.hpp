// Integration-test harness: starts the real preforkd binary with a temporary config
// and document root on loopback ports chosen at run time, waits for readiness by
// reading its log (bounded), and kills its whole process group in the destructor
// so a failing test leaves nothing behind. The test process is a child subreaper,
// so workers orphaned by a killed master are reparented to it and reaped.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace itest {

using namespace std::chrono_literals;
using Millis = std::chrono::milliseconds;

// A loopback port free for both TCP and UDP right now (family AF_INET or AF_INET6).
int free_port(int family = 2 /*AF_INET*/);
bool ipv6_loopback_available();

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& contents);

// Runs a shell command; returns its exit status and fills *output with stdout+stderr.
int run_command(const std::string& command, std::string* output = nullptr);

// True once pid no longer exists or is a zombie (reaped here when it is our child).
bool process_gone(pid_t pid);
bool wait_gone(pid_t pid, Millis timeout);
// Live children of pid, from /proc: not idle spares (prespawn: "preforkd: spare"),
// nor one between fork and exec (its parent's command line) or exiting (none).
std::vector<pid_t> children_of(pid_t pid);
// The master's idle spares, from their command line.
std::vector<pid_t> spares_of(pid_t pid);
// Socket inodes of LISTEN (tcp) or bound (udp) sockets on port, from /proc/net.
std::vector<unsigned long> socket_inodes(const std::string& proc_net_file, int port, bool listening_only);
// Socket inodes held open by pid, from /proc/PID/fd.
std::vector<unsigned long> socket_inodes_of(pid_t pid);

struct ServerOptions {
  int workers = 2;
  double graceful_timeout = 10;
  bool ipv6 = false;        // also an http and udp-echo listener on [::1]
  std::string extra_config; // appended verbatim
  double worker_timeout = 30;
  std::string crash_if_exists;  // PREFORKD_TEST_CRASH_IF_EXISTS for the workers
  // Top-level keys written before any table. Tests run as root, and a root master
  // refuses to start without `user`: "root" says so explicitly.
  std::string user = "root";
  std::string top_config;       // more top-level keys, verbatim
  std::string log_config;       // more [log] keys, verbatim
  bool error_log_to_file = false;  // [log] error_log = the file log() reads (else stderr, the same file)
  std::string web_config;       // keys inside the "web" (http) listener table
  std::string echo_config;      // keys inside the "echo" (tcp-echo) listener table
  std::string udp_config;       // keys inside the "echo-udp" listener table
  std::string rlimit_nofile;    // PREFORKD_TEST_RLIMIT_NOFILE for the workers
  std::string ipc_junk;         // PREFORKD_TEST_IPC_JUNK for the workers
  std::string binary;           // the master's executable, if not this build's (upgrade tests, applications)
  // [[listen]] tables, verbatim, instead of the web / echo / echo-udp trio (whose
  // ports are then unused); for binaries serving their own protocols.
  std::string listeners;
};

class Preforkd {
 public:
  explicit Preforkd(ServerOptions options = {});
  ~Preforkd();
  Preforkd(const Preforkd&) = delete;
  Preforkd& operator=(const Preforkd&) = delete;

  // Starts the master; returns false (with the log in *why) if the first generation
  // does not report ready within the timeout.
  bool start(Millis timeout = 10s, std::string* why = nullptr);
  pid_t master_pid() const { return master_; }
  // After a binary upgrade (USR2): the new master is the one to signal, watch and
  // stop from now on. It is in the first master's process group, and our child
  // (subreaper) once the old master has exited.
  void follow_master(pid_t pid) {
    master_ = pid;
    reaped_ = false;
  }
  std::vector<pid_t> worker_pids() const { return children_of(master_); }
  bool signal(int signum) const;
  // Waits for the master to exit; returns its exit status (or nullopt on timeout).
  std::optional<int> wait_exit(Millis timeout);
  std::string log() const { return read_file(log_path_); }
  // Waits until the log contains `needle` at least `count` times.
  bool wait_log(const std::string& needle, Millis timeout, std::size_t count = 1) const;
  // Waits until the master has exactly n children.
  bool wait_workers(std::size_t n, Millis timeout) const;
  // Rewrites the config with a different worker count (for reload tests).
  void set_workers(int workers);
  // Seconds of CPU (user + system) the master has used so far.
  double master_cpu_seconds() const;
  // Runs the binary with extra arguments against this server's config.
  int run_cli(const std::string& args, std::string* output = nullptr) const;

  const std::string& dir() const { return dir_; }
  const std::string& root() const { return root_; }
  const std::string& config_path() const { return config_path_; }
  const std::string& pid_file() const { return pid_file_; }
  int http_port() const { return http_port_; }
  int echo_port() const { return echo_port_; }  // tcp-echo and udp-echo
  int http6_port() const { return http6_port_; }
  int echo6_port() const { return echo6_port_; }  // udp-echo on [::1]

 private:
  ServerOptions options_;
  std::string dir_, root_, config_path_, pid_file_, log_path_;
  int http_port_ = 0, echo_port_ = 0, http6_port_ = 0, echo6_port_ = 0;
  pid_t master_ = 0;
  pid_t group_ = 0;  // the first master's process group: every master and worker is in it
  bool reaped_ = false;
};

// The operator's moves while clients run: `reloads` HUPs, each waited for
// ("retiring generation"), then TTIN and TTOU, each waited for in the worker
// count. False with *why (and the log) if one does not complete in time.
bool reload_and_scale(Preforkd& server, int workers, int reloads, std::string* why);

// Field n (1-based, as in proc(5)) of /proc/PID/stat; "" if the process is gone.
std::string proc_stat_field(pid_t pid, int n);
// User + system CPU seconds of pid (stat fields 14 and 15); -1 if gone.
double cpu_seconds(pid_t pid);

// How many times needle occurs in text (overlapping), e.g. a line in a log.
inline std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) ++n;
  return n;
}

// --- Clients -------------------------------------------------------------------

// A connected blocking TCP socket with send/receive timeouts; -1 on failure.
// receive_buffer > 0: SO_RCVBUF set before connecting, so the window the client
// advertises is small from the first segment (a slow reader).
int connect_tcp(const std::string& host, int port, Millis timeout = 3s, int receive_buffer = 0);
bool send_all(int fd, const std::string& bytes);
// Reads until the peer closes or the timeout passes.
std::string read_until_close(int fd, Millis timeout = 5s);
// Waits until the peer closes fd (EOF or reset); returns the bytes that came
// before, or nullopt if it is still open after `timeout`.
std::optional<std::string> wait_closed(int fd, Millis timeout);

struct HttpResponse {
  int status = 0;
  std::string head;  // status line and headers
  std::string body;
  std::string header(const std::string& name) const;  // case-insensitive; "" if absent
};
// Reads exactly one response (by Content-Length) from fd; nullopt on timeout/close.
// `head_request`: the response has no body whatever Content-Length says.
std::optional<HttpResponse> read_response(int fd, std::string* carry, bool head_request = false,
                                          Millis timeout = 5s);
// One request on a new connection.
std::optional<HttpResponse> http_get(int port, const std::string& path, const std::string& extra_headers = "",
                                     const std::string& method = "GET", const std::string& host = "127.0.0.1");

// One datagram to host:port and its answer; nullopt on timeout.
std::optional<std::string> udp_roundtrip(const std::string& host, int port, const std::string& payload,
                                         Millis timeout = 2s);

}  // namespace itest
