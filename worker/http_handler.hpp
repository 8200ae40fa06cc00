// http: HTTP/1.1 static file server (GET, HEAD, keep-alive, pipelining,
// If-Modified-Since), parsing with libhttp-parser.
#pragma once

#include "common/config.hpp"
#include "worker/handler.hpp"
#include "worker/worker_stats.hpp"

namespace preforkd {

std::unique_ptr<StreamHandler> make_http_handler(const ListenerConfig& listener, WorkerStats& stats);

}  // namespace preforkd
