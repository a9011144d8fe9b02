// The fuzz targets' bodies, shared by the libFuzzer executables (fuzz_main.cpp, built with AIPE_FUZZ)
// and by the CPU test that replays every input under regressions/ (replay_test.cpp). Each takes any
// bytes; bad input must end in the reader's error, never a crash, a hang or a sanitizer report. A
// property the code promises that does not hold is reported with std::abort(), which both libFuzzer and
// the replay test count as a failure.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace aipe::fuzz {

// Target names as the executables and the regressions/ folders are called.
const std::vector<std::string>& target_names();

// Runs the named target on one input; returns 0 (libFuzzer's convention) or aborts.
int run_target(const std::string& name, const std::uint8_t* data, std::size_t size);

}  // namespace aipe::fuzz
