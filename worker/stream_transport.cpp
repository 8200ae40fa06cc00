// The defaults of StreamTransport's later additions, for transports that do not
// implement them (the recording fakes of tests, an application's own): plain copies
// through write().
#include <unistd.h>

#include <cerrno>
#include <string>

#include <preforkd/stream.hpp>

namespace preforkd {

void StreamTransport::write_file(std::string_view head, int fd, std::uint64_t offset, std::uint64_t length,
                                 std::shared_ptr<const void> owner) {
  (void)owner;
  std::string body(length, '\0');
  std::size_t done = 0;
  while (done < length) {
    ssize_t n = ::pread(fd, body.data() + done, length - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  if (done < length) {
    // The file ended (or failed) early: what was promised cannot be sent.
    write(std::string(head), body.substr(0, done));
    close();
    return;
  }
  write(std::string(head), std::move(body));
}

}  // namespace preforkd
