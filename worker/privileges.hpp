// What a worker does as root before serving: raise its fd limit, then give up root.
#pragma once

#include <cstdint>
#include <string>

#include "common/config.hpp"

namespace preforkd {

// setrlimit(RLIMIT_NOFILE, limit) for soft and hard. false with *error on failure.
bool set_nofile_limit(std::uint64_t limit, std::string* error);

// Becomes run_as (setgroups to just its group, setgid, setuid, each checked), then
// verifies that root cannot be regained (setuid(0) must fail). Does nothing when
// `user` is unset or root, or when not running as root (the master warned then).
// false with *error on any failure: the worker must not serve.
bool drop_privileges(const RunAs& run_as, std::string* error);

}  // namespace preforkd
