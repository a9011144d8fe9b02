// aipe::kernels::attention::gather_kv on the GPU against a CPU gather of the same pages, bit for bit (a copy):
// sequences of 17, 0, 100 and 1 tokens (never a page multiple) over pages of 16 and 64 in a shuffled order,
// GQA shapes of d 64 and 128. Outputs are poisoned (NaN) before the call, with rows past `total` that must stay so.
#include <cuda_bf16.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/device.hpp"
#include "aipe/kernels/attention/gather_kv.hpp"

namespace {

namespace att = aipe::kernels::attention;

void run_case(int page, int kv_heads, int d) {
  const std::vector<int> lens = {17, 0, 100, 1};
  const int batch = int(lens.size()), row = kv_heads * d;
  const int max_len = *std::max_element(lens.begin(), lens.end());
  const int width = (max_len + page - 1) / page + 1;  // one spare entry per row
  int pages_used = 0;
  for (int l : lens) pages_used += (l + page - 1) / page;
  const int num_pages = pages_used + 5;
  std::vector<int> perm(num_pages);
  std::iota(perm.begin(), perm.end(), 0);
  std::mt19937 rng(unsigned(page * 1000 + row));
  std::shuffle(perm.begin(), perm.end(), rng);
  std::vector<int> table(std::size_t(batch) * width, num_pages - 1), cu = {0};
  int next = 0;
  for (int b = 0; b < batch; ++b) {
    for (int j = 0; j < (lens[b] + page - 1) / page; ++j) table[std::size_t(b) * width + j] = perm[next++];
    cu.push_back(cu.back() + lens[b]);
  }
  const int total = cu.back();
  // Distinct bit patterns everywhere (finite BF16: the exponent stays below all-ones).
  const std::size_t elems = std::size_t(num_pages) * page * row;
  std::vector<std::uint16_t> hk(elems), hv(elems);
  for (std::size_t i = 0; i < elems; ++i) {
    hk[i] = std::uint16_t(rng() & 0x3fff);
    hv[i] = std::uint16_t(0x8000 | (rng() & 0x3fff));
  }
  aipe::Stream st;
  aipe::DeviceBuffer<std::uint16_t> k(elems), v(elems);
  const int extra = 3;
  aipe::DeviceBuffer<std::uint16_t> ko(std::size_t(total + extra) * row), vo(std::size_t(total + extra) * row);
  aipe::DeviceBuffer<int> dt(table.size()), dcu(cu.size());
  AIPE_CUDA(cudaMemcpy(k.get(), hk.data(), k.bytes(), cudaMemcpyHostToDevice));
  AIPE_CUDA(cudaMemcpy(v.get(), hv.data(), v.bytes(), cudaMemcpyHostToDevice));
  AIPE_CUDA(cudaMemcpy(dt.get(), table.data(), dt.bytes(), cudaMemcpyHostToDevice));
  AIPE_CUDA(cudaMemcpy(dcu.get(), cu.data(), dcu.bytes(), cudaMemcpyHostToDevice));
  AIPE_CUDA(cudaMemset(ko.get(), 0xff, ko.bytes()));
  AIPE_CUDA(cudaMemset(vo.get(), 0xff, vo.bytes()));

  att::GatherKvArgs a{};
  a.cache.k = k.get();
  a.cache.v = v.get();
  a.cache.num_pages = num_pages;
  a.cache.page_size = page;
  a.cache.kv_heads = kv_heads;
  a.cache.d = d;
  a.cache.block_table = dt.get();
  a.cache.max_pages_per_seq = width;
  a.cu_seqlens = dcu.get();
  a.batch = batch;
  a.max_len = max_len;
  a.total = total;
  a.k_out = reinterpret_cast<__nv_bfloat16*>(ko.get());
  a.v_out = reinterpret_cast<__nv_bfloat16*>(vo.get());
  att::gather_kv(a, st.get());
  const auto gk = aipe::to_host(ko, st.get());
  const auto gv = aipe::to_host(vo, st.get());

  int bad = 0;
  for (int b = 0; b < batch; ++b)
    for (int t = 0; t < lens[b]; ++t) {
      const std::size_t src = (std::size_t(table[std::size_t(b) * width + t / page]) * page + t % page) * row;
      const std::size_t dst = std::size_t(cu[b] + t) * row;
      for (int i = 0; i < row; ++i)
        if (gk[dst + i] != hk[src + i] || gv[dst + i] != hv[src + i]) {
          if (++bad <= 5)
            ADD_FAILURE() << "sequence " << b << " token " << t << " element " << i << ": K " << gk[dst + i]
                          << " (want " << hk[src + i] << "), V " << gv[dst + i] << " (want " << hv[src + i] << ")";
        }
    }
  for (std::size_t i = std::size_t(total) * row; i < gk.size(); ++i)
    if (gk[i] != 0xffff || gv[i] != 0xffff) {
      ADD_FAILURE() << "element " << i << " past the gathered rows was written";
      break;
    }
  EXPECT_EQ(bad, 0) << "page " << page << ", kv_heads " << kv_heads << ", d " << d;
}

}  // namespace

TEST(AttentionGatherKvGpu, MatchesACpuGatherBitForBit) {
  if (auto why = aipe::gpu_unavailable_reason()) GTEST_SKIP() << *why;
  run_case(16, 2, 64);
  run_case(64, 8, 128);
  run_case(16, 1, 128);
}
