// Everything an application includes: #include <preforkd/preforkd.hpp>
#pragma once

#include <preforkd/http.hpp>
#include <preforkd/log.hpp>
#include <preforkd/main.hpp>
#include <preforkd/protocol.hpp>
#include <preforkd/stream.hpp>
#include <preforkd/uv_handle.hpp>
#include <preforkd/version.hpp>
