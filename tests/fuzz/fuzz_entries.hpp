// The fuzz targets' entry functions, shared by the libFuzzer executables (one per
// target, built with clang) and the corpus replay test (built with the normal
// compiler). Each returns normally or throws FuzzFailure (see fake_transport.hpp)
// when the code under test broke a property; sanitizers catch the rest.
#pragma once

#include <cstddef>
#include <cstdint>

namespace preforkd::fuzz {

// Bytes in, responses out, through HttpSession on a FakeTransport. Input layout:
//   byte 0     flags: 1 = EOF after the data, 2 = retire after the first chunk,
//              4 = let writes pile up (complete them only when the session pauses)
//   byte 1     k = byte % 16, the number of chunk lengths that follow
//   k bytes    chunk lengths (0 means 256), used in turn to split the rest
//   the rest   the bytes the client sends
void http_one_input(const std::uint8_t* data, std::size_t size);

// Byte 0 picks the limits, the rest is a client's bytes: whenever scan_request (the
// HTTP fast path) takes a request, http_parser must read the same request.
void http_scan_one_input(const std::uint8_t* data, std::size_t size);

// The config text; parse_config must return or throw ConfigError.
void config_one_input(const std::uint8_t* data, std::size_t size);

// A byte stream from a peer to an ipc::Decoder: no crash, the same messages
// whatever the read sizes, and every decoded message re-encodes to itself.
void ipc_one_input(const std::uint8_t* data, std::size_t size);

}  // namespace preforkd::fuzz
