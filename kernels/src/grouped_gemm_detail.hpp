// What kernels/src/grouped_gemm.cu and its host checks (grouped_gemm_check.cpp) share: which kernel a call takes.
#pragma once

namespace aipe::kernels::detail {

// Up to this many grouped rows (the capacity: tokens * top_k of a decode step) every expert gets a few rows, and
// the weight-streaming kernel reads each active expert's weights once per 4 of its rows instead of a 128-row WGMMA
// tile that would be nearly empty; above it the tile-by-tile WGMMA kernel runs.
inline constexpr int kGroupedStreamMaxRows = 64;

inline bool grouped_gemm_streams(int rows) { return rows <= kGroupedStreamMaxRows; }

}  // namespace aipe::kernels::detail
