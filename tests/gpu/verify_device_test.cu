// The device compare against the host one: the same inputs give the same VerifyResult, with device
// pointers and with a regenerated reference, for floats within a tolerance and for integers exactly.
#include <cuda_bf16.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <span>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/device.hpp"
#include "aipe/random.hpp"
#include "aipe/verify_device.cuh"

using namespace aipe;

namespace {

#define SKIP_WITHOUT_GPU() \
  if (auto why = gpu_unavailable_reason()) GTEST_SKIP() << *why

template <class T>
DeviceBuffer<T> upload(const std::vector<T>& h) {
  DeviceBuffer<T> d(h.size());
  AIPE_CUDA(cudaMemcpy(d.get(), h.data(), d.bytes(), cudaMemcpyHostToDevice));
  return d;
}

void expect_same(const VerifyResult& d, const VerifyResult& h) {
  EXPECT_EQ(d.ok, h.ok);
  EXPECT_EQ(d.checked, h.checked);
  EXPECT_EQ(d.mismatches, h.mismatches);
  EXPECT_EQ(d.non_finite, h.non_finite);
  EXPECT_DOUBLE_EQ(d.max_abs_error, h.max_abs_error);
  EXPECT_DOUBLE_EQ(d.max_rel_error, h.max_rel_error);
  // The device sums in another order: the norm agrees to rounding, not bit for bit.
  EXPECT_NEAR(d.norm_rel_error, h.norm_rel_error, 1e-12 + 1e-9 * h.norm_rel_error);
  ASSERT_EQ(d.first.size(), h.first.size());
  for (std::size_t k = 0; k < d.first.size(); ++k) {
    EXPECT_EQ(d.first[k].index, h.first[k].index);
    EXPECT_EQ(d.first[k].expected, h.first[k].expected);
    if (!std::isnan(h.first[k].actual)) EXPECT_EQ(d.first[k].actual, h.first[k].actual);
  }
}

struct UniformRef {
  std::uint64_t seed;
  __host__ __device__ float operator()(std::size_t i) const { return uniform_at(seed, i, -1.f, 1.f); }
};

}  // namespace

TEST(DeviceCompare, FloatsMatchTheHostCompare) {
  SKIP_WITHOUT_GPU();
  const std::size_t n = 1000003;  // not a multiple of any block
  std::vector<float> ref(n), out(n);
  for (std::size_t i = 0; i < n; ++i) ref[i] = out[i] = uniform_at(11, i, -4.f, 4.f);
  for (std::size_t i = 0; i < n; i += 7) out[i] *= 1.0005f;  // within f16's tolerance
  const Tolerance tol = tolerance_for(DType::f16);
  const Stream s;
  auto both = [&] {
    const DeviceBuffer<float> dout = upload(out), dref = upload(ref);
    const VerifyResult d = compare_on_device(n, dout.get(), dref.get(), tol, s);
    const VerifyResult h = compare(std::span<const float>(out), std::span<const float>(ref), tol);
    expect_same(d, h);
    return d;
  };
  EXPECT_TRUE(both().ok);
  // Wrong elements, one NaN (the poison) among them, and one past every block boundary.
  for (std::size_t i : {std::size_t{5}, std::size_t{6}, std::size_t{900001}, n - 1}) out[i] += 1.f;
  out[777777] = std::numeric_limits<float>::quiet_NaN();
  const VerifyResult d = both();
  EXPECT_FALSE(d.ok);
  EXPECT_EQ(d.mismatches, 5u);
  EXPECT_EQ(d.non_finite, 1u);
  ASSERT_FALSE(d.first.empty());
  EXPECT_EQ(d.first[0].index, 5u);
  EXPECT_NE(d.message().find("5 of 1000003 elements wrong"), std::string::npos) << d.message();
}

TEST(DeviceCompare, NaNNeverPassesEvenWithAHugeTolerance) {
  SKIP_WITHOUT_GPU();
  const std::vector<float> ref(1000, 1.f);
  std::vector<float> out(1000, 1.f);
  out[999] = std::numeric_limits<float>::quiet_NaN();
  const DeviceBuffer<float> dout = upload(out), dref = upload(ref);
  const Stream s;
  const VerifyResult r = compare_on_device(out.size(), dout.get(), dref.get(), Tolerance{1e30, 1e30, 1e30}, s);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.non_finite, 1u);
  // A poisoned (never written) output fails too.
  DeviceBuffer<float> poisoned(1000);
  AIPE_CUDA(cudaMemset(poisoned.get(), 0xFF, poisoned.bytes()));
  EXPECT_EQ(compare_on_device(1000, poisoned.get(), dref.get(), tolerance_for(DType::f32), s).non_finite, 1000u);
}

TEST(DeviceCompare, IntegersAreExactEvenAboveTwoToThe53) {
  SKIP_WITHOUT_GPU();
  // 2^60 and 2^60 + 1 are the same double: only an integer comparison tells them apart.
  const std::vector<long long> ref = {1ll << 60, 3, -5};
  const std::vector<long long> out = {(1ll << 60) + 1, 3, -5};
  const DeviceBuffer<long long> dout = upload(out), dref = upload(ref);
  const Stream s;
  const VerifyResult r = compare_on_device(ref.size(), dout.get(), dref.get(), tolerance_for(DType::exact), s);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.mismatches, 1u);
  ASSERT_EQ(r.first.size(), 1u);
  EXPECT_EQ(r.first[0].index, 0u);
  const std::vector<unsigned char> bytes = {0, 1, 255, 7};
  const DeviceBuffer<unsigned char> db = upload(bytes);
  EXPECT_TRUE(compare_on_device(bytes.size(), db.get(), db.get(), tolerance_for(DType::u8), s).ok);
}

TEST(DeviceCompare, ARegeneratedReferenceAndBf16Outputs) {
  SKIP_WITHOUT_GPU();
  const std::size_t n = 300007;
  const UniformRef ref{42};
  std::vector<__nv_bfloat16> out(n);
  std::vector<float> ref_h(n), out_f(n);
  for (std::size_t i = 0; i < n; ++i) {
    ref_h[i] = ref(i);
    out[i] = __float2bfloat16(ref_h[i]);
    out_f[i] = __bfloat162float(out[i]);
  }
  out[12345] = __float2bfloat16(5.f);
  out_f[12345] = 5.f;
  const DeviceBuffer<__nv_bfloat16> dout = upload(out);
  const Stream s;
  const Tolerance tol = tolerance_for(DType::bf16);
  const VerifyResult d = compare_on_device(n, dout.get(), ref, tol, s);
  expect_same(d, compare(std::span<const float>(out_f), std::span<const float>(ref_h), tol));
  EXPECT_FALSE(d.ok);
  EXPECT_EQ(d.mismatches, 1u);
  EXPECT_EQ(compare_on_device(0, dout.get(), ref, tol, s).checked, 0u) << "an empty compare launches nothing";
}
