// A shorter way through the HTTP layer for a handler inside the tree: the static
// file server's answer to a plain GET or HEAD of a file it holds in memory, the
// request a static server sees most. Through Handler::on_request that answer costs
// a virtual call per request field the handler reads, the path worked out again,
// an http::Body built and destroyed (two reference-count updates of the cached
// contents) and Exchange::respond's checks: going this way took a keep-alive
// request from 1,971 to 1,634 user-space instructions (callgrind, bench/profile,
// together with the scan's path length). Here the handler
// describes the answer and the session writes it with the same head, access log
// line and keep-alive decision as any other.
//
// Internal: not in include/preforkd (an application's Handler cannot gain a virtual
// function without breaking the ABI). The session looks for it with dynamic_cast on
// the handler it is given, once per listener, and uses it only for requests the
// fast path (scan_request) read.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <preforkd/http.hpp>

namespace preforkd {

// A 200 whose body is in memory. Valid until the handler's next call.
struct QuickAnswer {
  std::string_view headers;  // the handler's lines, as for Exchange::respond
  std::string_view body;     // all of it (a HEAD gets its length only)
  const std::shared_ptr<const std::string>* owner = nullptr;  // of body's bytes
};

class QuickAnswers {
 public:
  // Answers the exchange's request, a GET (head false) or HEAD of `path` (the
  // target up to its query), as on_request would. Returns true with *out set when
  // the answer is a 200 from memory, for the session to send; false when it has
  // answered through `exchange` itself (or deferred, like on_request).
  virtual bool answer_quickly(http::Exchange& exchange, bool head, std::string_view path, QuickAnswer* out) = 0;

 protected:
  ~QuickAnswers() = default;
};

}  // namespace preforkd
