// The classic BPF program that steers a SO_REUSEPORT group's new connections and
// datagrams to a chosen set of its sockets (SO_ATTACH_REUSEPORT_CBPF needs no
// privilege, unlike an eBPF sk_reuseport program). Kept apart from the sockets so
// that its shape and size limits can be tested without a kernel.
#pragma once

#include <linux/filter.h>

#include <vector>

namespace preforkd {

// A program that returns one of `indices` (positions in the group's kernel order,
// ascending, distinct, non-empty) uniformly at random. Its length is
// 3 + 2 * min(allowed, skipped-below-the-highest-allowed) instructions, so any
// set over a group of up to BPF_MAXINSNS - 3 = 4093 sockets fits; an empty
// result means the set does not fit (or was empty) and nothing may be attached.
std::vector<sock_filter> reuseport_steering_program(const std::vector<int>& indices);

}  // namespace preforkd
