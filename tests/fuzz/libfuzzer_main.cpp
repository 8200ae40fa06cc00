// libFuzzer's entry point for one target; FUZZ_ENTRY names the entry function
// (set per executable in tests/fuzz/CMakeLists.txt).
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/fuzz_entries.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  preforkd::fuzz::FUZZ_ENTRY(data, size);
  return 0;
}
