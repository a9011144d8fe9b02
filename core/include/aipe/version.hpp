#pragma once
namespace aipe {
const char* version();       // "0.1.0"
const char* git_revision();  // short hash at configure time, "-dirty" when the tree had changes
const char* cuda_architectures();  // what the device code was built for, e.g. "90a"
}  // namespace aipe
