// Starting wrk and reading its summary.
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

Wrk::Wrk(int port, int connections, int seconds, bool keep_alive, const std::string& dir, const std::string& path,
         int threads)
    : seconds_(seconds) {
  output_ = dir + "/wrk." + std::to_string(port) + "." + std::to_string(++count_) + ".out";
  std::vector<std::string> args = {"wrk", "-t" + std::to_string(threads), "-c" + std::to_string(connections),
                                   "-d" + std::to_string(seconds) + "s", "--timeout", "5s"};
  if (!keep_alive) {
    args.push_back("-H");
    args.push_back("Connection: close");
  }
  args.push_back("http://127.0.0.1:" + std::to_string(port) + path);
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
  {
    connect_errors_ = std::stol(m[1]);
    timeouts_ = std::stol(m[4]);
    socket_errors_ = std::stol(m[1]) + std::stol(m[2]) + std::stol(m[3]) + std::stol(m[4]);
  }
  if (std::regex_search(text_, m, std::regex(R"(Non-2xx or 3xx responses: (\d+))"))) non_2xx_ = std::stol(m[1]);
  return done_ && exited_ok_;
}

WrkSeries::WrkSeries(int port, int connections, bool keep_alive, const std::string& dir, int slice_seconds,
                     const std::string& path) {
  thread_ = std::thread([=, this] {
    // Bounded whatever the test does: at most ten minutes of load.
    for (int run = 0; run < 600 / slice_seconds && !stop_; ++run) {
      Wrk wrk(port, connections, slice_seconds, keep_alive, dir, path, 1);
      bool ok = wrk.finish();
      if (!ok) clean_ = false;
      requests_ += wrk.requests();
      socket_errors_ += wrk.socket_errors();
      connect_errors_ += wrk.connect_errors();
      timeouts_ += wrk.timeouts();
      non_2xx_ += wrk.non_2xx();
      ++runs_;
      std::lock_guard<std::mutex> lock(mutex_);
      if (!kept_error_output_) output_ = wrk.output();
      if (!ok || wrk.socket_errors() != 0 || wrk.non_2xx() != 0) kept_error_output_ = true;
    }
  });
}

WrkSeries::~WrkSeries() { stop(); }

bool WrkSeries::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  return clean_;
}

std::string WrkSeries::output() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return output_;
}

}  // namespace itest
