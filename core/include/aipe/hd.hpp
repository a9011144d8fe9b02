// AIPE_HD: a function that host and device code both call (inlined on both sides); plain inline where
// no CUDA compiler is involved, so CPU-only translation units can include the same headers.
#pragma once

#if defined(__CUDACC__)
#define AIPE_HD __host__ __device__ __forceinline__
#else
#define AIPE_HD inline
#endif
