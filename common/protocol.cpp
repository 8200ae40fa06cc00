// The Protocol base class: a name and a transport, and defaults that do nothing, so
// that Protocol itself is a protocol that only names a transport.
#include <preforkd/protocol.hpp>

#include <utility>

namespace preforkd {

Protocol::Protocol(std::string name, Transport transport) : name_(std::move(name)), transport_(transport) {}
Protocol::~Protocol() = default;
void Protocol::declare(Schema&) const {}
std::unique_ptr<StreamHandler> Protocol::stream_handler(Listener&) { return nullptr; }
std::unique_ptr<DatagramHandler> Protocol::datagram_handler(Listener&) { return nullptr; }
void Protocol::on_worker_start(Worker&) {}
void Protocol::on_worker_retire(Worker&) {}
void Protocol::on_worker_exit(Worker&) {}

}  // namespace preforkd
