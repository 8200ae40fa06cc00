// PredecessorWatch: a pidfd polled on the loop, or a one-second getppid() check.
#include "master/predecessor_watch.hpp"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "common/log.hpp"

namespace preforkd {
namespace {

constexpr std::uint64_t kParentCheckMs = 1000;

int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

}  // namespace

PredecessorWatch::PredecessorWatch(uv_loop_t* loop, std::function<void()> gone)
    : loop_(loop), gone_(std::move(gone)), poll_(this), timer_(this) {}

PredecessorWatch::~PredecessorWatch() { close(); }

bool PredecessorWatch::start(pid_t pid) {
  pid_ = pid;
  pidfd_ = open_pidfd(pid);
  // Opened first, checked second: if it is still our parent now, the pidfd names it.
  if (::getppid() != pid) {
    close();
    return false;
  }
  int rc = UV_ENOSYS;
  if (pidfd_ >= 0) {
    ::fcntl(pidfd_, F_SETFD, FD_CLOEXEC);
    rc = uv_poll_init(loop_, poll_.get(), pidfd_);
    if (rc == 0) {
      poll_.mark_initialized();
      rc = uv_poll_start(poll_.get(), UV_READABLE, [](uv_poll_t* p, int, int) {
        if (auto* self = owner_of<PredecessorWatch>(p)) self->fire();
      });
    }
    if (rc != 0) PF_LOG_WARN("upgrade: watching master %d through a pidfd: %s", static_cast<int>(pid), uv_strerror(rc));
  } else {
    PF_LOG_INFO("upgrade: pidfd_open(%d): %s; checking our parent every second", static_cast<int>(pid),
                std::strerror(errno));
  }
  if (rc == 0) return true;
  rc = uv_timer_init(loop_, timer_.get());
  if (rc == 0) {
    timer_.mark_initialized();
    rc = uv_timer_start(
        timer_.get(),
        [](uv_timer_t* t) {
          auto* self = owner_of<PredecessorWatch>(t);
          if (self && ::getppid() != self->pid_) self->fire();
        },
        kParentCheckMs, kParentCheckMs);
  }
  if (rc != 0) PF_LOG_ERROR("upgrade: cannot watch master %d: %s", static_cast<int>(pid), uv_strerror(rc));
  return true;
}

void PredecessorWatch::fire() {
  close();
  if (gone_) gone_();
}

void PredecessorWatch::close() {
  poll_.reset();
  timer_.reset();
  if (pidfd_ >= 0) ::close(pidfd_);
  pidfd_ = -1;
}

}  // namespace preforkd
