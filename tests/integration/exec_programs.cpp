// The exec-mode programs, their commands, the cached Go build, and ExecServer.
#include "tests/integration/exec_programs.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <functional>
#include <sstream>
#include <thread>

namespace itest {
namespace {

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

}  // namespace

std::string exec_fixtures_dir() { return std::string(PREFORKD_SOURCE_DIR) + "/tests/integration/exec"; }

std::string go_server_binary(std::string* error) {
  const std::string source = exec_fixtures_dir() + "/server.go";
  const std::string text = read_file(source);
  if (text.empty()) {
    *error = source + ": cannot read";
    return {};
  }
  const std::string cache = PREFORKD_EXEC_CACHE_DIR;
  ::mkdir(cache.c_str(), 0755);
  char hash[32];
  std::snprintf(hash, sizeof hash, "%016zx", std::hash<std::string>{}(text));
  const std::string binary = cache + "/server-" + hash;
  // Several test processes may want it at once: one builds, the others wait.
  const int lock = ::open((cache + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock >= 0) ::flock(lock, LOCK_EX);
  if (::access(binary.c_str(), X_OK) != 0) {
    const std::string partial = binary + ".partial";
    std::string output;
    // GOPATH mode over Debian's /usr/share/gocode: no module download, no network.
    int rc = run_command("cd '" + exec_fixtures_dir() + "' && env GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE='" +
                             cache + "/gocache' GOPROXY=off GOFLAGS= HOME='" + cache + "' go build -o '" + partial +
                             "' server.go && mv '" + partial + "' '" + binary + "'",
                         &output);
    if (rc != 0) *error = "go build server.go failed (" + std::to_string(rc) + "):\n" + output;
  }
  if (lock >= 0) ::close(lock);
  return ::access(binary.c_str(), X_OK) == 0 ? binary : std::string();
}

std::vector<ExecProgram> exec_programs() {
  const std::string dir = exec_fixtures_dir();
  const std::string in_fixtures = "directory = " + quoted(dir) + "\n";
  std::vector<ExecProgram> programs;
  // gunicorn reads LISTEN_FDS itself and sends READY=1; --preload so that the app
  // is imported before that READY=1 (see the README); --backlog as preforkd's,
  // since gunicorn calls listen(2) again on the socket it is given.
  programs.push_back({"gunicorn", false, false,
                      "command = [\"/usr/bin/gunicorn\", \"--workers\", \"1\", \"--preload\", \"--backlog\", \"511\", "
                      "\"--graceful-timeout\", \"10\", \"wsgi_app:app\"]\n" + in_fixtures});
  // uvicorn: --fd 3, no sd_notify: ready by staying alive; it does not handle USR1.
  programs.push_back({"uvicorn", false, false,
                      "command = [\"/usr/bin/python3\", \"-m\", \"uvicorn\", \"--fd\", \"3\", \"--no-access-log\", "
                      "\"--lifespan\", \"off\", \"asgi_app:app\"]\nready = \"1s\"\nreopen_signal = \"none\"\n" +
                          in_fixtures,
                      /*drops_unread_at_stop=*/true});
  std::string error;
  std::string go = go_server_binary(&error);
  programs.push_back({"go", false, true, "command = [" + quoted(go.empty() ? "/nonexistent/go-build-failed" : go) + "]\n"});
  // A bare name: found in PATH at load time.
  programs.push_back({"node", false, true, "command = [\"node\", \"server.js\"]\n" + in_fixtures});
  programs.push_back({"python-udp", true, false, "command = [\"/usr/bin/python3\", \"udp_server.py\"]\n" + in_fixtures});
  return programs;
}

std::vector<ExecProgram> graceful_keepalive_programs() {
  std::vector<ExecProgram> out;
  for (ExecProgram& p : exec_programs())
    if (p.graceful_keepalive) out.push_back(p);
  return out;
}

ExecProgram exec_program(const std::string& name) {
  for (ExecProgram& p : exec_programs())
    if (p.name == name) return p;
  return {};
}

ExecServer::ExecServer(ExecProgram program, ExecOptions options)
    : program_(std::move(program)), options_(std::move(options)),
      server_({.workers = options_.workers, .graceful_timeout = options_.graceful_timeout,
               .worker_timeout = options_.worker_timeout}) {
  if (options_.admin) admin_port_ = free_port();
  write_file(server_.config_path(), config_text());
}

std::string ExecServer::config_text() const {
  std::ostringstream c;
  c << "workers = " << options_.workers << "\n"
    << "pid_file = " << quoted(server_.pid_file()) << "\n"
    << "graceful_timeout = " << options_.graceful_timeout << "\n"
    << "worker_timeout = " << options_.worker_timeout << "\n"
    << "user = \"root\"\n"
    << options_.top << "\n"
    << "[log]\nlevel = \"info\"\n\n";
  if (options_.admin) c << "[admin]\naddress = \"127.0.0.1:" << admin_port_ << "\"\n\n";
  c << "[exec]\n" << program_.exec_keys << options_.exec_extra << "\n"
    << "[[listen]]\nname = " << (program_.udp ? "\"dns\"" : "\"http\"") << "\naddress = \"127.0.0.1:" << port()
    << "\"\nprotocol = " << (program_.udp ? "\"udp\"" : "\"tcp\"") << "\n";
  return c.str();
}

void ExecServer::rewrite(int workers, const std::string& exec_extra) {
  options_.workers = workers;
  options_.exec_extra = exec_extra;
  write_file(server_.config_path(), config_text());
}

bool ExecServer::start(std::string* why, Millis timeout) { return server_.start(timeout, why); }

std::size_t ExecServer::reloads_done() const {
  std::string log = server_.log();
  return count_of(log, " workers ready; retiring generation") + count_of(log, "keeps serving");
}

bool ExecServer::reload(Millis timeout) {
  std::size_t before = reloads_done();
  if (!server_.signal(SIGHUP)) return false;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (reloads_done() > before) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

std::optional<ExecServer::Answer> ExecServer::ask() const {
  Answer answer;
  if (program_.udp) {
    auto reply = udp_roundtrip("127.0.0.1", port(), "whoami");
    if (!reply || std::sscanf(reply->c_str(), "slot %d gen %u", &answer.slot, &answer.generation) != 2)
      return std::nullopt;
    return answer;
  }
  auto response = http_get(port(), "/hello.txt");
  if (!response || response->status != 200 || response->body != "hello from preforkd\n") return std::nullopt;
  try {
    answer.slot = std::stoi(response->header("X-Slot"));
    answer.generation = static_cast<unsigned>(std::stoul(response->header("X-Generation")));
    answer.pid = static_cast<pid_t>(std::stoi(response->header("X-Pid")));
  } catch (const std::exception&) {
    return std::nullopt;
  }
  return answer;
}

}  // namespace itest
