// Writing framed messages to an IPC pipe from either side of it.
#pragma once

#include <uv.h>

#include "common/ipc_message.hpp"

namespace preforkd::ipc {

// Encodes and queues one frame; the bytes live until libuv has written them.
// Returns 0 or a libuv error.
int write_frame(uv_stream_t* stream, const Message& message);

}  // namespace preforkd::ipc
