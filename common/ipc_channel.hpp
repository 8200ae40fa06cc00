// Writing framed messages to an IPC pipe from either side of it.
#pragma once

#include <uv.h>

#include <string>

#include "common/ipc_message.hpp"

namespace preforkd::ipc {

// Encodes and queues one frame; the bytes live until libuv has written them.
// Returns 0 or a libuv error.
int write_frame(uv_stream_t* stream, const Message& message);

// Queues bytes as they are, framed or not (write_frame's transport, and the test
// hook that sends the master malformed frames). Returns 0 or a libuv error.
int write_bytes(uv_stream_t* stream, std::string bytes);

}  // namespace preforkd::ipc
