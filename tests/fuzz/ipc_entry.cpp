// The IPC fuzz target: whatever a (confused or hostile) peer writes to the pipe,
// ipc::Decoder must not crash, must yield the same messages and the same verdict
// however the bytes are split into reads, must stay failed once failed, and every
// message it yields must re-encode to a frame that decodes to the same message.
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/ipc_message.hpp"
#include "tests/fuzz/fake_transport.hpp"
#include "tests/fuzz/fuzz_entries.hpp"

namespace preforkd::fuzz {
namespace {

struct Outcome {
  std::vector<ipc::Message> messages;
  bool failed = false;
  std::string error;
};

// Feeds `bytes` in reads of `read_size` (0: all at once), draining after each read
// as the master and the worker do.
Outcome decode(std::string_view bytes, std::size_t read_size) {
  ipc::Decoder decoder;
  Outcome out;
  std::size_t step = read_size == 0 ? bytes.size() : read_size;
  for (std::size_t pos = 0; pos < bytes.size(); pos += step) {
    std::string_view piece = bytes.substr(pos, step);
    decoder.feed(std::span<const char>(piece.data(), piece.size()));
    std::string error;
    while (auto m = decoder.next(&error)) out.messages.push_back(std::move(*m));
    if (decoder.failed()) {
      out.failed = true;
      out.error = error;
      if (decoder.next(&error)) throw FuzzFailure("a failed decoder yielded another message");
      break;
    }
  }
  return out;
}

}  // namespace

void ipc_one_input(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  Outcome whole = decode(bytes, 0);
  if (whole.failed && whole.error.empty()) throw FuzzFailure("decoder failed without saying why");
  for (std::size_t read_size : {1u, 7u}) {
    Outcome split = decode(bytes, read_size);
    if (split.messages != whole.messages || split.failed != whole.failed)
      throw FuzzFailure("decoding depends on read sizes (" + std::to_string(read_size) + "-byte reads)");
  }
  for (const ipc::Message& m : whole.messages) {
    std::string frame = ipc::encode(m);
    Outcome again = decode(frame, 0);
    if (again.failed || again.messages.size() != 1 || again.messages[0] != m)
      throw FuzzFailure("a decoded message does not survive encode -> decode");
  }
}

}  // namespace preforkd::fuzz
