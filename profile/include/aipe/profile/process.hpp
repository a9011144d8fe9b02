// Runs a program and waits for it: how `aipe profile` starts ncu. Host-only.
#pragma once
#include <string>
#include <vector>

namespace aipe::profile {

// Runs argv[0] (a path) with its arguments, stdout and stderr appended to `log_path`. Returns the
// exit status, 128 + signal when killed, or -1 when it could not start (`why` says why).
int run_process(const std::vector<std::string>& argv, const std::string& log_path, std::string* why = nullptr);

// The running executable's own path (/proc/self/exe).
std::string self_exe();

}  // namespace aipe::profile
