// The attention work model's pair count (aipe/kernels/attention/work.hpp) against a brute-force count of the
// mask functor's verdicts: causal aligned bottom-right for seq_q <, =, > seq_kv, awkward lengths, the sliding
// window, and the bad inputs.
#include "aipe/kernels/attention/work.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

#include "aipe/kernels/attention/masks.cuh"

namespace aipe::kernels::attention {
namespace {

std::int64_t brute_force(int seq_q, int seq_kv, MaskKind mask, int window = 0) {
  const Causal causal = Causal::bottom_right(seq_q, seq_kv);
  std::int64_t n = 0;
  for (int q = 0; q < seq_q; ++q)
    for (int kv = 0; kv < seq_kv; ++kv) {
      bool visible = mask == MaskKind::none || causal(0, 0, q, kv);
      if (mask == MaskKind::sliding_window) visible = visible && kv > q + causal.offset - window;
      n += visible;
    }
  return n;
}

TEST(AttentionWork, CausalPairsMatchTheMaskFunctorExactly) {
  const int lengths[] = {1, 2, 7, 64, 65, 127, 333, 461, 1000};
  for (int sq : lengths)
    for (int skv : lengths)
      EXPECT_EQ(visible_pairs(sq, skv, MaskKind::causal), brute_force(sq, skv, MaskKind::causal))
          << "seq_q " << sq << ", seq_kv " << skv;
}

TEST(AttentionWork, CausalIsNotHalfTheSquare) {
  // The Llama prefill shape: s (s + 1) / 2, not s^2 / 2.
  EXPECT_EQ(visible_pairs(4096, 4096, MaskKind::causal), 4096ll * 4097 / 2);
  // More queries than keys: the first 100 queries see nothing, the rest form the triangle 1..200.
  EXPECT_EQ(visible_pairs(300, 200, MaskKind::causal), 200ll * 201 / 2);
  // Fewer queries than keys (a chunk of prefill against its cache): the rows see 801..1000 keys.
  EXPECT_EQ(visible_pairs(200, 1000, MaskKind::causal), (1000ll * 1001 - 800ll * 801) / 2);
  EXPECT_EQ(visible_pairs(0, 5, MaskKind::causal), 0);
  EXPECT_EQ(visible_pairs(5, 0, MaskKind::causal), 0);
}

TEST(AttentionWork, NoMaskAndSlidingWindow) {
  EXPECT_EQ(visible_pairs(333, 461, MaskKind::none), 333ll * 461);
  for (int window : {1, 5, 64, 500})
    for (auto [sq, skv] : {std::pair{333, 333}, std::pair{100, 461}, std::pair{461, 100}})
      EXPECT_EQ(visible_pairs(sq, skv, MaskKind::sliding_window, window),
                brute_force(sq, skv, MaskKind::sliding_window, window))
          << "seq_q " << sq << ", seq_kv " << skv << ", window " << window;
  EXPECT_EQ(visible_keys(0, 10, 10, MaskKind::causal), 1);
  EXPECT_EQ(visible_keys(9, 10, 10, MaskKind::causal), 10);
  EXPECT_EQ(visible_keys(0, 20, 10, MaskKind::causal), 0);
}

TEST(AttentionWork, BadInputsAreNamed) {
  EXPECT_THROW(visible_pairs(-1, 4, MaskKind::causal), std::invalid_argument);
  EXPECT_THROW(visible_pairs(4, 4, MaskKind::sliding_window, 0), std::invalid_argument);
}

}  // namespace
}  // namespace aipe::kernels::attention
