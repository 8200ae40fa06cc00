// http: the static-file server, one application of the HTTP layer: GET and HEAD of
// files under a root, through the per-listener FileCache; ETag, If-None-Match,
// If-Modified-Since, If-Match, If-Unmodified-Since, Range and If-Range; index
// files and the redirect of a directory to its slash; gzip_static; error pages;
// Expires and Cache-Control. 405 for other known methods, 501 for the rest.
#pragma once

#include <memory>
#include <string>

#include <preforkd/http.hpp>

#include "worker/static_options.hpp"

namespace preforkd {

std::unique_ptr<http::Handler> make_static_handler(StaticOptions options);
// root: absolute and canonical (the config loader's `directory` key); every other
// option at its default.
std::unique_ptr<http::Handler> make_static_handler(std::string root);

}  // namespace preforkd
