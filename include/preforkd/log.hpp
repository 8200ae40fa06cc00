// Logging from a protocol: lines go to the worker's error log ([log] error_log,
// stderr by default) with the same time, level, pid and role prefix as preforkd's
// own, written with one write(2) each. Lines below [log] level are dropped.
#pragma once

#include <preforkd/export.hpp>

namespace preforkd {

enum class LogLevel { debug, info, notice, warn, error };

namespace log {

// printf-style: log::write(LogLevel::warn, "kv: %zu keys, limit reached", n).
PREFORKD_API void write(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace log
}  // namespace preforkd
