// The static-file handler: GET and HEAD of files under a root, from the FileCache
// (small files from memory, large ones by sendfile from a cached open fd), with
// nginx's behaviour around them: ETag and the preconditions of RFC 9110 13.2.2,
// single byte ranges, directories redirected to their slash and served by their
// index, precompressed .gz siblings (gzip_static), error pages and cache headers.
#include "worker/static_handler.hpp"

#include <ctime>

#include "common/log.hpp"
#include "worker/ascii.hpp"
#include "worker/file_cache.hpp"
#include "worker/http_date.hpp"
#include "worker/http_quick_answer.hpp"
#include "worker/static_path.hpp"
#include "worker/static_request.hpp"

namespace preforkd {
namespace {

using http::Body;

// The request headers the handler acts on, found in one pass over them. A list
// header sent on several lines (RFC 9110 5.3) is joined with commas.
struct Conditions {
  std::string_view if_none_match, if_match, if_modified_since, if_unmodified_since, if_range, range,
      accept_encoding;
  bool ranges_repeated = false;  // two Range or If-Range lines: the range is ignored
  std::string joined[3];         // storage for repeated list headers
};

bool starts_like(std::string_view name, char lower) { return name.size() > 1 && (name[0] | 0x20) == lower; }

class StaticHandler final : public http::Handler, public QuickAnswers {
 public:
  explicit StaticHandler(StaticOptions options)
      : loop_(options.loop),
        cache_(cache_headers_for(options.expires, options.cache_control)),
        error_pages_(std::move(options.error_pages)),
        files_(std::move(options.root), cache_options(options, cache_.fixed)) {}

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
    answer(exchange, head, request.path(), nullptr);
  }

  bool answer_quickly(http::Exchange& exchange, bool head, std::string_view path, QuickAnswer* out) override {
    answer(exchange, head, path, out);
    return out->owner != nullptr;
  }

  // A GET or HEAD of path. quick: a 200 from memory is described there, for the
  // session to send, instead of answered through the exchange.
  void answer(http::Exchange& exchange, bool head, std::string_view path, QuickAnswer* quick) {
    const http::Request& request = exchange.request();
    FileLookup found = files_.lookup(path, now_ms());
    if (found.status == 301) return redirect_to_directory(exchange, request);
    if (found.status != 200) return exchange.respond_error(found.status);
    const StaticFile* file = found.file;

    Conditions c;
    read_conditions(request, &c);
    // The precompressed sibling, for a client that takes gzip. Never for a range:
    // a client asking for bytes of the file must not get bytes of another
    // representation it may not expect.
    if (file->gzip && c.range.empty() && accepts_gzip(c.accept_encoding)) file = file->gzip.get();

    // RFC 9110 13.2.2: If-Match, else If-Unmodified-Since; then If-None-Match, else
    // If-Modified-Since; then If-Range with Range.
    if (!c.if_match.empty() ? !etag_list_matches(c.if_match, file->etag, /*strong=*/true)
                            : unmodified_since_fails(c.if_unmodified_since, *file))
      return exchange.respond_error(412);
    if (!c.if_none_match.empty() ? etag_list_matches(c.if_none_match, file->etag, /*strong=*/false)
                                 : modified_since_fails(c.if_modified_since, *file))
      return exchange.respond(304, with_expires(file->not_modified), Body());

    const std::uint64_t size = file->size();
    // Range is defined for GET only (RFC 9110 14.2).
    if (!head && !c.range.empty() && !c.ranges_repeated && if_range_holds(c.if_range, *file)) {
      ByteRange range;
      switch (parse_range(c.range, size, &range)) {
        case RangeAnswer::partial: return send_range(exchange, *file, range);
        case RangeAnswer::unsatisfiable: return unsatisfiable(exchange, size);
        case RangeAnswer::whole:
        case RangeAnswer::several: break;  // the whole file, as RFC 9110 allows
      }
    }
    std::string_view headers = with_expires(file->headers);
    if (quick != nullptr && file->body) {
      *quick = {headers, *file->body, &file->body};
      return;
    }
    if (head) return exchange.respond(200, headers, Body::length_only(size));
    exchange.respond(200, headers, body_of(*file, 0, size));
  }

  // The listener's error_page for this status, if it has one and the file is
  // there; else the layer's default page.
  http::Response error_response(int status) override {
    for (const auto& [code, path] : error_pages_) {
      if (code != status) continue;
      FileLookup found = files_.lookup(path, now_ms());
      if (found.status != 200) {
        PF_LOG_WARN("http: error_page %d: %s: %d; sending the default page", status, path.c_str(), found.status);
        break;
      }
      http::Response r;
      r.status = status;
      r.headers.add("Content-Type", found.file->content_type);
      r.body = body_of(*found.file, 0, found.file->size());
      return r;
    }
    return http::Handler::error_response(status);
  }

 private:
  static FileCacheOptions cache_options(const StaticOptions& o, const std::string& cache_headers) {
    FileCacheOptions f;
    f.index = o.index;
    f.gzip_static = o.gzip_static;
    f.cache_headers = cache_headers;
    return f;
  }

  std::uint64_t now_ms() const { return loop_ ? uv_now(loop_) : coarse_now_ms(); }

  static Body body_of(const StaticFile& file, std::uint64_t offset, std::uint64_t length) {
    if (length == 0) return Body();
    if (file.body) return Body::shared(file.body, static_cast<std::size_t>(offset), static_cast<std::size_t>(length));
    return Body::file(file.open, file.open->fd, offset, length);
  }

  static void read_conditions(const http::Request& request, Conditions* c) {
    const std::size_t n = request.header_count();
    for (std::size_t i = 0; i < n; ++i) {
      http::Header h = request.header_at(i);
      // Most headers (Host, User-Agent, Accept, Cookie) fail this first test.
      if (starts_like(h.name, 'i')) {
        if (iequals(h.name, "if-none-match")) add_list(&c->if_none_match, &c->joined[0], h.value);
        else if (iequals(h.name, "if-match")) add_list(&c->if_match, &c->joined[1], h.value);
        else if (iequals(h.name, "if-modified-since")) set_once(&c->if_modified_since, h.value);
        else if (iequals(h.name, "if-unmodified-since")) set_once(&c->if_unmodified_since, h.value);
        else if (iequals(h.name, "if-range")) c->ranges_repeated |= !set_once(&c->if_range, h.value);
      } else if (starts_like(h.name, 'r')) {
        if (iequals(h.name, "range")) c->ranges_repeated |= !set_once(&c->range, h.value);
      } else if (starts_like(h.name, 'a')) {
        if (iequals(h.name, "accept-encoding")) add_list(&c->accept_encoding, &c->joined[2], h.value);
      }
    }
  }
  static bool set_once(std::string_view* slot, std::string_view value) {
    if (!slot->empty()) return false;
    *slot = value.empty() ? std::string_view(" ") : value;  // present, even if empty
    return true;
  }
  static void add_list(std::string_view* slot, std::string* storage, std::string_view value) {
    if (slot->empty()) {
      *slot = value.empty() ? std::string_view(" ") : value;
      return;
    }
    if (storage->empty()) storage->assign(*slot);
    *storage += ", ";
    storage->append(value);
    *slot = *storage;
  }

  static bool modified_since_fails(std::string_view since_text, const StaticFile& file) {
    if (since_text.empty()) return false;
    auto since = parse_http_date(since_text);
    return since && file.st.st_mtime <= *since;
  }
  static bool unmodified_since_fails(std::string_view since_text, const StaticFile& file) {
    if (since_text.empty()) return false;
    auto since = parse_http_date(since_text);
    return since && file.st.st_mtime > *since;
  }
  // If-Range: an entity-tag compared strongly, or exactly the Last-Modified date.
  static bool if_range_holds(std::string_view value, const StaticFile& file) {
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (value.empty()) return true;  // no If-Range
    if (value.front() == '"') return value == file.etag;
    if (value.starts_with("W/")) return false;  // a weak tag never matches If-Range
    auto date = parse_http_date(value);
    return date && *date == file.st.st_mtime;
  }

  void send_range(http::Exchange& exchange, const StaticFile& file, const ByteRange& range) {
    headers_.assign("Content-Range: bytes ");
    headers_ += std::to_string(range.first) + "-" + std::to_string(range.last) + "/" + std::to_string(file.size());
    headers_ += "\r\n";
    headers_ += file.range_headers;
    append_expires(&headers_);
    exchange.respond(206, headers_, body_of(file, range.first, range.length()));
  }

  void unsatisfiable(http::Exchange& exchange, std::uint64_t size) {
    http::Response r = error_response(416);
    r.headers.add("Content-Range", "bytes */" + std::to_string(size));
    exchange.respond(std::move(r));
  }

  // nginx answers "/dir" with a redirect to "/dir/", so that the index page's
  // relative links resolve against the directory. The Location is the normalised
  // path (never "//host" from a target like "//host"), re-encoded, with the query.
  void redirect_to_directory(http::Exchange& exchange, const http::Request& request) {
    std::string normalized;
    normalize_path(request.path(), &normalized);
    std::string location = percent_encode_path(normalized) + "/";
    if (!request.query().empty()) location += "?" + std::string(request.query());
    http::Response r = http::Handler::error_response(301);
    r.headers.add("Location", location);
    exchange.respond(std::move(r));
  }

  // The relative Expires line changes once a second; everything else is in the
  // cache's ready-made headers.
  std::string_view with_expires(const std::string& headers) {
    if (!cache_.relative) return headers;
    headers_.assign(headers);
    append_expires(&headers_);
    return headers_;
  }
  void append_expires(std::string* out) {
    if (!cache_.relative) return;
    std::time_t now = std::time(nullptr);
    if (now != expires_at_) {
      expires_line_ = "Expires: " + format_http_date(now + cache_.seconds) + "\r\n";
      expires_at_ = now;
    }
    *out += expires_line_;
  }

  uv_loop_t* loop_;
  const CacheHeaders cache_;
  const std::vector<std::pair<int, std::string>> error_pages_;
  FileCache files_;
  std::string headers_;  // an answer's header lines when they are built per request
  std::time_t expires_at_ = -1;
  std::string expires_line_;
};

}  // namespace

std::unique_ptr<http::Handler> make_static_handler(StaticOptions options) {
  return std::make_unique<StaticHandler>(std::move(options));
}

std::unique_ptr<http::Handler> make_static_handler(std::string root) {
  StaticOptions options;
  options.root = std::move(root);
  return make_static_handler(std::move(options));
}

}  // namespace preforkd
