// Which handler serves which configured protocol: the one place a new protocol is named.
#pragma once

#include <memory>

#include "common/config.hpp"
#include "worker/handler.hpp"
#include "worker/worker_stats.hpp"

namespace preforkd {

// nullptr when the protocol is a datagram protocol (and the reverse).
std::unique_ptr<StreamHandler> make_stream_handler(const ListenerConfig& listener, WorkerStats& stats);
std::unique_ptr<DatagramHandler> make_datagram_handler(const ListenerConfig& listener);

}  // namespace preforkd
