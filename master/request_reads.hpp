// The set-up the admin server and the control socket share for each accepted
// client: a deadline for its request, and reads into the connection's own fixed
// buffer. Both serve one short request per connection from the master's loop, so
// neither may let a silent or endless client hold memory or a handle for long.
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>

#include "common/uv_handle.hpp"

namespace preforkd {

// Conn owns `timer` (an uninitialised UvHandle<uv_timer_t>) and `read_buffer` (a
// char array), and is the owner (handle->data) of `stream` and the timer. It is
// called back with:
//   on_deadline()                   no whole request within timeout_ms
//   on_bytes(const char*, size_t)   bytes read
//   on_read_end(ssize_t, uv_stream_t*)  EOF or an error (nread < 0)
// Returns 0 or the libuv error of the step that failed; what was initialised is
// closed by Conn's handles.
template <class Conn>
int start_request_reads(uv_loop_t* loop, Conn& connection, uv_stream_t* stream, std::uint64_t timeout_ms) {
  int rc = uv_timer_init(loop, connection.timer.get());
  if (rc != 0) return rc;
  connection.timer.mark_initialized();
  rc = uv_timer_start(
      connection.timer.get(),
      [](uv_timer_t* t) {
        if (auto* c = owner_of<Conn>(t)) c->on_deadline();
      },
      timeout_ms, 0);
  if (rc != 0) return rc;
  return uv_read_start(
      stream,
      [](uv_handle_t* h, std::size_t, uv_buf_t* buf) {
        auto* c = owner_of<Conn>(h);
        *buf = uv_buf_init(c->read_buffer, sizeof c->read_buffer);
      },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
        auto* c = owner_of<Conn>(s);
        if (!c) return;
        if (nread > 0) return c->on_bytes(buf->base, static_cast<std::size_t>(nread));
        if (nread < 0) c->on_read_end(nread, s);
      });
}

}  // namespace preforkd
