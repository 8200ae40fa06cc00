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

// worker_cpu_affinity: the same choice among `indices`, but a connection (or
// datagram) the kernel handles on CPU c goes to an index whose worker is pinned to
// c (`cpu_of[i]` is indices[i]'s CPU, -1 for none), at random among several; a CPU
// with none of them falls back to reuseport_steering_program(indices). On
// loopback the CPU that handles a SYN is the connecting thread's, so client and
// worker share a core and its caches (bench/results/PROFILE-keepalive.md). When a
// CPU's block would not fit a jump's 8-bit offset the CPUs are ignored: the plain
// program is returned.
std::vector<sock_filter> reuseport_cpu_steering_program(const std::vector<int>& indices, const std::vector<int>& cpu_of);

}  // namespace preforkd
