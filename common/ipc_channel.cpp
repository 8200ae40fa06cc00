// Framed writes on IPC pipes.
#include "common/ipc_channel.hpp"

#include <memory>
#include <string>

namespace preforkd::ipc {

int write_frame(uv_stream_t* stream, const Message& message) { return write_bytes(stream, encode(message)); }

int write_bytes(uv_stream_t* stream, std::string bytes) {
  struct Request {
    uv_write_t req{};
    std::string frame;
  };
  auto request = std::make_unique<Request>();
  request->frame = std::move(bytes);
  request->req.data = request.get();
  uv_buf_t buf = uv_buf_init(request->frame.data(), request->frame.size());
  int rc = uv_write(&request->req, stream, &buf, 1,
                    [](uv_write_t* req, int) { delete static_cast<Request*>(req->data); });
  if (rc == 0) request.release();
  return rc;
}

}  // namespace preforkd::ipc
