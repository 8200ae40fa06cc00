// Line splitting and rate limiting of program output, and the pipes it comes on.
#include "master/exec_output.hpp"

#include <unistd.h>

#include <cerrno>

#include "common/log.hpp"

namespace preforkd {
namespace {

constexpr std::uint64_t kWindowMs = 1000;
// One read's worth: libuv reads a readable pipe up to 32 times per loop
// iteration, so this bounds what one program can make the master do in one turn.
constexpr std::size_t kReadBuffer = 16 * 1024;
// finish(): what is read after exit without waiting.
constexpr std::size_t kMaxFinalBytes = 1024 * 1024;

// The log is one line per event: no control characters from the program in it.
std::string cleaned(bool continued, std::string_view text) {
  std::string clean(continued ? "... " : "");
  clean.append(text);
  for (char& c : clean)
    if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) c = '?';
  return clean;
}

}  // namespace

void OutputLines::feed(std::string_view bytes, std::uint64_t now_ms, const Sink& sink) {
  while (!bytes.empty()) {
    std::size_t newline = bytes.find('\n');
    std::size_t room = max_line_ - partial_.size();
    std::size_t take = newline == std::string_view::npos ? bytes.size() : newline;
    if (take >= room) {
      // Longer than a log line may be: log what fits, and mark the rest as its continuation.
      partial_.append(bytes.substr(0, room));
      bytes.remove_prefix(room);
      line(partial_, now_ms, sink);
      partial_.clear();
      continued_ = true;
      continue;
    }
    partial_.append(bytes.substr(0, take));
    if (newline == std::string_view::npos) return;
    bytes.remove_prefix(take + 1);
    if (!(continued_ && partial_.empty())) line(partial_, now_ms, sink);
    partial_.clear();
    continued_ = false;
  }
}

void OutputLines::finish(std::uint64_t now_ms, const Sink& sink) {
  if (!partial_.empty()) line(partial_, now_ms, sink);
  partial_.clear();
  continued_ = false;
  report_dropped(sink);
}

std::string OutputLines::last_line() const { return last_.empty() ? std::string() : cleaned(last_continued_, last_); }

void OutputLines::line(std::string_view text, std::uint64_t now_ms, const Sink& sink) {
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  if (text.find_first_not_of(" \t") != std::string_view::npos) {
    last_.assign(text.substr(0, kMaxLastLine));
    last_continued_ = continued_;
  }
  if (now_ms >= window_start_ms_ + kWindowMs) {
    report_dropped(sink);
    window_start_ms_ = now_ms;
    in_window_ = 0;
  }
  if (in_window_ >= per_second_) {
    ++dropped_;
    return;
  }
  ++in_window_;
  sink(cleaned(continued_, text));
}

void OutputLines::report_dropped(const Sink& sink) {
  if (dropped_ == 0) return;
  sink("(" + std::to_string(dropped_) + " line(s) not logged: more than " + std::to_string(per_second_) +
       " lines in one second)");
  dropped_ = 0;
}

OutputPipe::OutputPipe(uv_loop_t* loop, std::string stream_name)
    : loop_(loop), stream_name_(std::move(stream_name)), pipe_(this),
      sink_([this](std::string_view line) { log_line(line); }) {}

uv_stream_t* OutputPipe::create() {
  int rc = uv_pipe_init(loop_, pipe_.get(), /*ipc=*/0);
  if (rc != 0) {
    PF_LOG_ERROR("uv_pipe_init(%s): %s", stream_name_.c_str(), uv_strerror(rc));
    return nullptr;
  }
  pipe_.mark_initialized();
  return pipe_.stream();
}

void OutputPipe::start(std::string who) {
  who_ = std::move(who);
  if (!pipe_) return;
  int rc = uv_read_start(pipe_.stream(), on_alloc, on_read);
  if (rc != 0) PF_LOG_ERROR("%s: uv_read_start(%s): %s", who_.c_str(), stream_name_.c_str(), uv_strerror(rc));
}

void OutputPipe::finish() {
  if (pipe_) {
    uv_os_fd_t fd = -1;
    if (uv_fileno(pipe_.handle(), &fd) == 0) {
      // libuv's end is non-blocking: this reads what is there and stops.
      static char buffer[kReadBuffer];
      std::size_t total = 0;
      while (total < kMaxFinalBytes) {
        ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        total += static_cast<std::size_t>(n);
        lines_.feed(std::string_view(buffer, static_cast<std::size_t>(n)), now(), sink_);
      }
    }
    pipe_.reset();
  }
  lines_.finish(now(), sink_);
}

void OutputPipe::on_alloc(uv_handle_t*, size_t, uv_buf_t* buf) {
  static char buffer[kReadBuffer];
  *buf = uv_buf_init(buffer, sizeof buffer);
}

void OutputPipe::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* self = owner_of<OutputPipe>(stream);
  if (!self) return;
  if (nread < 0) {
    // EOF (or an error): the program closed it; what it wrote is all read.
    if (nread != UV_EOF) PF_LOG_WARN("%s: read %s: %s", self->who_.c_str(), self->stream_name_.c_str(),
                                     uv_strerror(static_cast<int>(nread)));
    uv_read_stop(stream);
    self->lines_.finish(self->now(), self->sink_);
    return;
  }
  self->lines_.feed(std::string_view(buf->base, static_cast<std::size_t>(nread)), self->now(), self->sink_);
}

void OutputPipe::log_line(std::string_view line) const {
  PF_LOG_NOTICE("%s: %.*s", who_.c_str(), static_cast<int>(line.size()), line.data());
}

std::uint64_t OutputPipe::now() const { return uv_now(loop_); }

}  // namespace preforkd
