// attention::gather_kv's host-side checks (CPU): each bad argument is an error naming it.
#include <gtest/gtest.h>

#include <string>

#include "aipe/kernels/attention/gather_kv.hpp"

namespace {

namespace att = aipe::kernels::attention;

std::string error_of(const att::GatherKvArgs& a) {
  try {
    att::check_gather_kv_args(a);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(AttentionGatherKv, ChecksNameTheArgument) {
  alignas(16) static unsigned char buf[64];
  att::GatherKvArgs a{};
  a.cache.k = a.cache.v = buf;
  a.cache.num_pages = 4;
  a.cache.page_size = 16;
  a.cache.kv_heads = 2;
  a.cache.d = 64;
  a.cache.block_table = reinterpret_cast<const int*>(buf);
  a.cache.max_pages_per_seq = 3;
  a.cu_seqlens = reinterpret_cast<const int*>(buf);
  a.batch = 2;
  a.max_len = 48;
  a.total = 60;
  a.k_out = a.v_out = reinterpret_cast<__nv_bfloat16*>(buf);
  EXPECT_EQ(error_of(a), "");
  att::GatherKvArgs b = a;
  b.cu_seqlens = nullptr;
  EXPECT_NE(error_of(b).find("cu_seqlens"), std::string::npos);
  b = a;
  b.max_len = 49;  // 3 pages of 16
  EXPECT_NE(error_of(b).find("max_len"), std::string::npos);
  b = a;
  b.total = 47;
  EXPECT_NE(error_of(b).find("total"), std::string::npos);
  b = a;
  b.cache.dtype = att::KvDType::fp8_e4m3;
  EXPECT_NE(error_of(b).find("BF16"), std::string::npos);
  b = a;
  b.k_out = reinterpret_cast<__nv_bfloat16*>(buf + 2);
  EXPECT_NE(error_of(b).find("aligned"), std::string::npos);
  b = a;
  b.batch = 0;
  EXPECT_NE(error_of(b).find("batch"), std::string::npos);
  b = a;
  b.cache.d = 96;
  EXPECT_FALSE(error_of(b).empty());
}
