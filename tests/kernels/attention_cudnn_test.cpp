// The ch18 cudnn rung's host side (examples/ch18_attention/cudnn_sdpa.cu) never throws or crashes while it
// prepares: a problem cuDNN cannot take, a missing library, or a machine without a GPU all come back as the
// reason the rung is skipped. On a GPU machine with cuDNN the same calls build a real plan.
#include <gtest/gtest.h>

#include <cctype>
#include <iostream>
#include <string>

#include "../../examples/ch18_attention/cudnn_sdpa.hpp"

namespace aipe::ch18 {
namespace {

CudnnSdpaProblem problem(int seq_q, int seq_kv, bool causal) {
  CudnnSdpaProblem p;
  p.batch = 2, p.heads = 6, p.kv_heads = 2, p.seq_q = seq_q, p.seq_kv = seq_kv, p.d = 64;
  p.causal = causal;
  p.scale = 0.125f;
  p.q_head = p.kv_head = 64;
  p.q_row = 6 * 64, p.q_batch = p.q_row * seq_q;
  p.kv_row = 2 * 64, p.kv_batch = p.kv_row * seq_kv;
  return p;
}

TEST(CudnnSdpa, RowsThatSeeNoKeyAreRefusedWithTheRule) {
  CudnnSdpa s;
  const std::string why = s.build(problem(461, 200, true));
  EXPECT_NE(why.find("seq_q <= seq_kv"), std::string::npos) << why;
}

TEST(CudnnSdpa, BuildReportsInsteadOfThrowing) {
  for (bool causal : {false, true}) {
    CudnnSdpa s;
    std::string why;
    EXPECT_NO_THROW(why = s.build(problem(333, 461, causal)));
    // "" where cuDNN and a GPU are present; otherwise a reason that names cuDNN (missing library, no device).
    std::string lower = why;
    for (char& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
    if (!why.empty()) EXPECT_NE(lower.find("cudnn"), std::string::npos) << why;
    else EXPECT_NE(s.library().find("cuDNN 9"), std::string::npos) << s.library();
    std::cout << "[ cudnn ] causal " << causal << ": " << (why.empty() ? "plan built, " + s.library() : why) << "\n";
  }
}

}  // namespace
}  // namespace aipe::ch18
