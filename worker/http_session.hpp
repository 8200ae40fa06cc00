// The HTTP/1.1 layer as a StreamHandler: parsing (libhttp-parser), framing,
// keep-alive, ordered pipelining, limits, timeouts, retirement, the access log and
// response bodies (bytes, shared cache buffers, file ranges), around an
// http::Handler that only decides what to answer. http::serve() returns one.
#pragma once

#include <memory>

#include <preforkd/http.hpp>

#include "worker/http_limits.hpp"

namespace preforkd {

// `requests` counts every request answered (the worker's request counter).
std::unique_ptr<StreamHandler> make_http_layer(std::unique_ptr<http::Handler> handler, const HttpLimits& limits,
                                               Counter requests);

}  // namespace preforkd
