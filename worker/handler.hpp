// The protocol interface lives in the public API (include/preforkd/stream.hpp);
// this name stays for the code inside the tree.
#pragma once

#include <preforkd/stream.hpp>
