// A program's stdout and stderr, read by the master from a pipe each and written
// to the error log one line at a time, prefixed with the worker's slot,
// generation and pid. Bounded both ways, so that a program writing a flood can
// neither block nor starve the master: lines longer than kMaxOutputLine are cut
// into pieces, at most kMaxOutputLinesPerSecond lines per stream are logged in
// each second (the rest are counted and the count is logged, as journald's rate
// limit does), and each read is of one bounded buffer, so the loop moves on to
// heartbeats and signals between reads. The program is never blocked for long
// either: the master reads whatever comes, dropping what it will not log.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "common/uv_handle.hpp"

namespace preforkd {

inline constexpr std::size_t kMaxOutputLine = 2048;
inline constexpr unsigned kMaxOutputLinesPerSecond = 1000;
// How much of a program's last line a failed start's reason quotes.
inline constexpr std::size_t kMaxLastLine = 240;

// Bytes in, log lines out; pure, so it is unit-tested without pipes or clocks.
class OutputLines {
 public:
  using Sink = std::function<void(std::string_view line)>;
  explicit OutputLines(std::size_t max_line = kMaxOutputLine, unsigned lines_per_second = kMaxOutputLinesPerSecond)
      : max_line_(max_line), per_second_(lines_per_second) {}

  // Bytes the program wrote, read at loop time now_ms.
  void feed(std::string_view bytes, std::uint64_t now_ms, const Sink& sink);
  // The stream ended (or the program exited): a last line without '\n' and the
  // count of what was dropped.
  void finish(std::uint64_t now_ms, const Sink& sink);
  // The last non-blank line (its first kMaxLastLine bytes, cleaned), logged or
  // dropped by the rate limit: what a program that exits at once last said.
  std::string last_line() const;

 private:
  void line(std::string_view text, std::uint64_t now_ms, const Sink& sink);
  void report_dropped(const Sink& sink);

  std::size_t max_line_;
  unsigned per_second_;
  std::string partial_;
  bool continued_ = false;  // partial_ continues a line already logged in part
  std::uint64_t window_start_ms_ = 0;
  unsigned in_window_ = 0;
  std::uint64_t dropped_ = 0;
  std::string last_;
  bool last_continued_ = false;
};

// One stream of one program: the master's end of the pipe, read on the loop.
class OutputPipe {
 public:
  OutputPipe(uv_loop_t* loop, std::string stream_name);
  // The pipe to hand uv_spawn (UV_CREATE_PIPE); nullptr (logged) on failure.
  uv_stream_t* create();
  // After a successful spawn: start reading, logging as "<who>: <line>".
  void start(std::string who);
  // The program exited: what is still in the pipe is read (bounded, without
  // waiting) and logged, then the pipe is closed. A process the program left
  // behind may hold the other end open, so EOF is not waited for.
  void finish();
  std::string last_line() const { return lines_.last_line(); }

 private:
  static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  void log_line(std::string_view line) const;
  std::uint64_t now() const;

  uv_loop_t* loop_;
  std::string stream_name_;
  std::string who_;
  UvHandle<uv_pipe_t> pipe_;
  OutputLines lines_;
  OutputLines::Sink sink_;
};

}  // namespace preforkd
