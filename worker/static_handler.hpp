// http: the static-file server, one application of the HTTP layer: GET and HEAD of
// files under a root, through the per-listener FileCache; If-Modified-Since; 405
// for other known methods, 501 for the rest.
#pragma once

#include <memory>
#include <string>

#include <preforkd/http.hpp>

namespace preforkd {

// root: absolute and canonical (the config loader's `directory` key).
std::unique_ptr<http::Handler> make_static_handler(std::string root);

}  // namespace preforkd
