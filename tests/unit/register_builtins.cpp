// The unit tests parse configs through parse_config(text, path), which validates
// against the process registry: fill it with the built-ins, as preforkd::main does.
#include "worker/builtin_protocols.hpp"

namespace {

const bool g_builtins = [] {
  preforkd::ensure_builtin_protocols();
  return true;
}();

}  // namespace
