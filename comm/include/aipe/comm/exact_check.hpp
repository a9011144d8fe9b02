// The device side of the exact check: fill a rank's send buffer with its inputs (exact_values.hpp) and count
// the receive-buffer elements that differ from their expected value, on the GPU, so an 8 GiB buffer is checked
// without a copy to the host. Host-callable; asynchronous on `stream` (the current device's).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "aipe/comm/data_type.hpp"
#include "aipe/comm/exact_values.hpp"

namespace aipe::comm {

// buf[i] = input_for(c, op, n, rank, i) for i in [0, count), converted to `t`.
void fill_inputs(DataType t, void* buf, std::int64_t count, Collective c, ReduceOp op, int n, int rank,
                 cudaStream_t stream);

// What check_outputs leaves in its device result: wrong = elements that differ (NaN never matches), first =
// the smallest such index (UINT64_MAX when none).
struct CheckResult {
  unsigned long long wrong;
  unsigned long long first;
};
// Compares buf[i], i in [0, recv_count), with expected_for(c, op, n, rank, count, i) and writes the counts to
// `result` (device memory, overwritten). Elements whose value is undefined (reduce off the root) are skipped.
void check_outputs(DataType t, const void* buf, std::int64_t recv_count, Collective c, ReduceOp op, int n,
                   int rank, std::int64_t count, CheckResult* result, cudaStream_t stream);

// Element i of a buffer of `t` read back to the host as a double (for messages and host-side checks).
double element_as_double(DataType t, const void* host_buf, std::int64_t i);

}  // namespace aipe::comm
