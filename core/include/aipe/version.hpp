// Where and when a result was made: the build's version and revision, and the time of the run.
#pragma once
#include <string>

namespace aipe {
const char* version();       // "0.1.0"
const char* git_revision();  // short hash at configure time, "-dirty" when the tree had changes
const char* cuda_architectures();  // what the device code was built for, e.g. "90a"
std::string now_iso8601();   // the current UTC time, "2026-12-04T03:00:00Z": what results files record
}  // namespace aipe
