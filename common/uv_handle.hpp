// UvHandle and owner_of are part of the public API (include/preforkd/uv_handle.hpp);
// this name stays for the code inside the tree.
#pragma once

#include <preforkd/uv_handle.hpp>
