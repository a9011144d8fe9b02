// aipe::kernels::grouped_gemm's host side, without a GPU: every bad argument is a std::invalid_argument that names
// it, good ones pass (check_grouped_gemm_args reads pointer values only), and the kernel choice follows the rows.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>

#include "aipe/kernels/grouped_gemm.hpp"
#include "../../kernels/src/grouped_gemm_detail.hpp"

namespace {

namespace k = aipe::kernels;
using k::bf16;

// Device pointers that are never dereferenced, 256-byte aligned as cudaMalloc's are.
template <class T>
T* fake(std::uintptr_t i) {
  return reinterpret_cast<T*>(std::uintptr_t(1) << 32 | (i << 24));
}

k::GroupedGemmArgs good(bool mx = false) {
  k::GroupedGemmArgs g;
  g.rows = 4097;
  g.experts = 128;
  g.n = 2880;
  g.k = 2880;
  g.a = k::matrix<const bf16>(fake<bf16>(1), g.rows, g.k);
  g.offsets = fake<int>(2);
  if (mx) {
    g.w_blocks = fake<std::uint8_t>(3);
    g.w_scales = fake<std::uint8_t>(4);
  } else {
    g.w = fake<bf16>(3);
  }
  g.c = k::matrix(fake<bf16>(5), g.rows, g.n);
  return g;
}

// The message of the std::invalid_argument the check throws ("" when none).
std::string error_of(const k::GroupedGemmArgs& g) {
  try {
    k::check_grouped_gemm_args(g);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

void expect_error(const std::function<void(k::GroupedGemmArgs&)>& change, const std::string& names, bool mx = false) {
  k::GroupedGemmArgs g = good(mx);
  change(g);
  const std::string e = error_of(g);
  EXPECT_NE(e.find(names), std::string::npos) << "expected an error naming '" << names << "', got '" << e << "'";
}

TEST(GroupedGemmCheck, AcceptsGoodArguments) {
  EXPECT_EQ(error_of(good()), "");
  EXPECT_EQ(error_of(good(true)), "");
  k::GroupedGemmArgs g = good();
  g.gather = fake<int>(6);
  g.a.rows = 1;  // the gather reads the un-permuted tokens
  g.bias = fake<bf16>(7);
  g.w_expert_stride = std::int64_t(g.n) * g.k + 64;
  EXPECT_EQ(error_of(g), "");
  k::GroupedGemmArgs small = good();
  small.n = 200;
  small.k = 264;  // K % 8 is enough for BF16 weights
  small.a = k::matrix<const bf16>(fake<bf16>(1), small.rows, small.k);
  small.c = k::matrix(fake<bf16>(5), small.rows, small.n);
  EXPECT_EQ(error_of(small), "");
  k::GroupedGemmArgs none = good();
  none.rows = 0;  // nothing to read or write: the matrices are not looked at
  none.a = {};
  none.c = {};
  EXPECT_EQ(error_of(none), "");
}

TEST(GroupedGemmCheck, NamesTheBadArgument) {
  expect_error([](auto& g) { g.experts = 0; }, "experts");
  expect_error([](auto& g) { g.experts = 1025; }, "experts");
  expect_error([](auto& g) { g.n = 0; }, "n must");
  expect_error([](auto& g) { g.k = 0; }, "k must");
  expect_error([](auto& g) { g.rows = -1; }, "rows");
  expect_error([](auto& g) { g.offsets = nullptr; }, "offsets");
  expect_error([](auto& g) { g.w = nullptr; }, "either as w");
  expect_error([](auto& g) { g.w_blocks = fake<std::uint8_t>(3); }, "either as w");
  expect_error([](auto& g) { g.w_scales = nullptr; }, "w_scales", true);
  expect_error([](auto& g) { g.w_blocks = nullptr; }, "w_blocks", true);
  expect_error([](auto& g) { g.k = 2884; g.a.cols = g.a.ld = 2884; }, "multiple of 8");
  expect_error([](auto& g) { g.k = 2888; g.a.cols = g.a.ld = 2888; }, "multiple of 32", true);
  expect_error([](auto& g) { g.w = fake<bf16>(3) + 1; }, "w must be 16-byte aligned");
  expect_error([](auto& g) { g.w_blocks = fake<std::uint8_t>(3) + 8; }, "w_blocks must be 16-byte aligned", true);
  expect_error([](auto& g) { g.w_expert_stride = 100; }, "w_expert_stride");
  expect_error([](auto& g) { g.w_expert_stride = std::int64_t(g.n) * g.k + 4; }, "w_expert_stride");
  expect_error([](auto& g) { g.w_expert_stride = std::int64_t(g.n) * g.k; }, "w_expert_stride", true);
  expect_error([](auto& g) { g.a.data = nullptr; }, "a is null");
  expect_error([](auto& g) { g.a.cols = 2872; }, "a has 2872 columns");
  expect_error([](auto& g) { g.a.ld = 2872; }, "a's ld");
  expect_error([](auto& g) { g.a.ld = 2884; }, "row pitch");
  expect_error([](auto& g) { g.a.data += 4; }, "a's base");
  expect_error([](auto& g) { g.a.rows = 4096; }, "a has 4096 rows");
  expect_error([](auto& g) { g.gather = fake<int>(6); g.a.rows = 0; }, "gather");
  expect_error([](auto& g) { g.c.data = nullptr; }, "c is null");
  expect_error([](auto& g) { g.c.rows = 4000; }, "c has 4000 rows");
  expect_error([](auto& g) { g.c.cols = 2879; }, "c has 2879 columns");
  expect_error([](auto& g) { g.c.ld = 2000; }, "c's ld");
  expect_error([](auto& g) { g.c.data += 1; }, "c must be 4-byte aligned");
  // Every message says whose it is.
  k::GroupedGemmArgs g = good();
  g.n = -3;
  EXPECT_EQ(error_of(g).rfind("kernels::grouped_gemm: ", 0), 0u) << error_of(g);
}

TEST(GroupedGemmCheck, DecodeRowsStreamTheWeights) {
  EXPECT_TRUE(k::detail::grouped_gemm_streams(1));
  EXPECT_TRUE(k::detail::grouped_gemm_streams(64));
  EXPECT_FALSE(k::detail::grouped_gemm_streams(65));
  EXPECT_FALSE(k::detail::grouped_gemm_streams(4097));
}

}  // namespace
