// The static-file handler. Small files come from the cache with their header lines
// ready-made and their bytes shared (no copy); large ones are opened per request
// and handed to the layer as a file body, with headers from this open's fstat so
// that Content-Length matches what is sent.
#include "worker/static_handler.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "worker/file_cache.hpp"
#include "worker/http_date.hpp"
#include "worker/mime_types.hpp"

namespace preforkd {
namespace {

using http::Body;

class StaticHandler final : public http::Handler {
 public:
  explicit StaticHandler(std::string root) : files_(std::move(root)) {}

  void on_request(http::Exchange& exchange) override {
    const http::Request& request = exchange.request();
    std::string_view method = request.method();
    const bool head = method == "HEAD";
    if (!head && method != "GET") {
      if (method == "POST" || method == "PUT" || method == "DELETE" || method == "PATCH" || method == "OPTIONS") {
        http::Response r = error_response(405);
        r.headers.add("Allow", "GET, HEAD");
        return exchange.respond(std::move(r));
      }
      return exchange.respond_error(501);
    }
    FileLookup found = files_.lookup(request.target(), coarse_now_ms());
    if (found.status != 200) return exchange.respond_error(found.status);
    const StaticFile& file = *found.file;
    if (std::string_view since_text = request.header("if-modified-since"); !since_text.empty()) {
      auto since = parse_http_date(since_text);
      if (since && file.st.st_mtime <= *since) {
        return exchange.respond(304, "Last-Modified: " + file.last_modified + "\r\n", Body());
      }
    }
    const auto size = static_cast<std::uint64_t>(file.st.st_size);
    if (head) return exchange.respond(200, file.headers, Body::length_only(size));
    if (size == 0) return exchange.respond(200, file.headers, Body());
    if (file.body) return exchange.respond(200, file.headers, Body::shared(file.body));
    send_large_file(exchange, file.path);
  }

 private:
  void send_large_file(http::Exchange& exchange, const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      int status = fd >= 0 ? 404 : status_for_open_error(errno);
      if (fd >= 0) ::close(fd);
      return exchange.respond_error(status);
    }
    std::string headers = "Content-Type: ";
    headers += mime_type_for(path);
    headers += "\r\nLast-Modified: " + format_http_date(st.st_mtime) + "\r\n";
    exchange.respond(200, headers, Body::file(fd, 0, static_cast<std::uint64_t>(st.st_size)));
  }

  FileCache files_;
};

}  // namespace

std::unique_ptr<http::Handler> make_static_handler(std::string root) {
  return std::make_unique<StaticHandler>(std::move(root));
}

}  // namespace preforkd
