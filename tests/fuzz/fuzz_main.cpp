// One libFuzzer executable per target: AIPE_FUZZ_TARGET names it (see tests/fuzz/targets.hpp).
#include <cstddef>
#include <cstdint>

#include "targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return aipe::fuzz::run_target(AIPE_FUZZ_TARGET, data, size);
}
