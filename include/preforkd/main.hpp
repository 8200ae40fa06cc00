// The entry point of a preforkd binary. An application's main is one call:
//
//   int main(int argc, char** argv) { return preforkd::main(argc, argv, {my_protocol}); }
//
// and that binary is a complete preforkd: the same command line (-c, -t, -s,
// status, --version), signals, config, master and workers. The built-in protocols
// (http, tcp-echo, udp-echo) are always registered; `protocols` adds the
// application's. A protocol that cannot be registered (a bad or duplicate name, a
// bad key or counter) makes main print why and return 1.
#pragma once

#include <functional>
#include <initializer_list>

#include <preforkd/export.hpp>
#include <preforkd/protocol.hpp>

namespace preforkd {

PREFORKD_API int main(int argc, char** argv, std::initializer_list<std::reference_wrapper<Protocol>> protocols);

}  // namespace preforkd
