// Wrk: fork/exec of wrk with its output in a file, and the summary's numbers.
#include "tests/integration/wrk.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <regex>
#include <thread>
#include <vector>

#include "tests/integration/harness.hpp"

namespace itest {

Wrk::Wrk(int port, int connections, int seconds, bool keep_alive, const std::string& dir) : seconds_(seconds) {
  output_ = dir + "/wrk." + std::to_string(port) + "." + std::to_string(++count_) + ".out";
  std::vector<std::string> args = {"wrk", "-t2", "-c" + std::to_string(connections),
                                   "-d" + std::to_string(seconds) + "s", "--timeout", "5s"};
  if (!keep_alive) {
    args.push_back("-H");
    args.push_back("Connection: close");
  }
  args.push_back("http://127.0.0.1:" + std::to_string(port) + "/hello.txt");
  pid_ = fork();
  if (pid_ == 0) {
    int out = open(output_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(out, STDOUT_FILENO);
    dup2(out, STDERR_FILENO);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execvp("wrk", argv.data());
    _exit(127);
  }
}

Wrk::~Wrk() {
  if (pid_ > 0 && !done_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

bool Wrk::finish() {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds_ + 15);
  while (!done_ && std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      done_ = true;
      exited_ok_ = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    } else {
      std::this_thread::sleep_for(50ms);
    }
  }
  text_ = read_file(output_);
  std::smatch m;
  if (std::regex_search(text_, m, std::regex(R"((\d+) requests in)"))) requests_ = std::stol(m[1]);
  if (std::regex_search(text_, m, std::regex(R"(Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+))")))
    socket_errors_ = std::stol(m[1]) + std::stol(m[2]) + std::stol(m[3]) + std::stol(m[4]);
  if (std::regex_search(text_, m, std::regex(R"(Non-2xx or 3xx responses: (\d+))"))) non_2xx_ = std::stol(m[1]);
  return done_ && exited_ok_;
}

}  // namespace itest
