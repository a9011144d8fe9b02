// The aipe command line: argument parsing and dispatch only. Returns the process exit code:
// 0 all verified, 1 a verification (or a run) failed, 2 bad usage, 3 no usable GPU.
#pragma once
#include <ostream>
#include <string>
#include <vector>

namespace aipe::cli {

enum Exit : int { kOk = 0, kFailed = 1, kUsage = 2, kNoGpu = 3, kToolMissing = 4 /* ncu or CUPTI absent */ };

int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace aipe::cli
