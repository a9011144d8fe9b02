// The weights arena on the GPU: a checkpoint the test writes is streamed through the pinned staging buffers (a
// staging size smaller than a tensor, so chunking and buffer reuse are exercised) and read back bit for bit; a
// wrong shape or a missing tensor is an error that names the tensor; synthetic weights land in their ranges.
#include <cuda_bf16.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "aipe/buffer.hpp"
#include "aipe/device.hpp"
#include "aipe/llm/weights.hpp"

namespace fs = std::filesystem;
using aipe::llm::Checkpoint;
using aipe::llm::DeviceWeights;
using aipe::llm::DType;
using aipe::llm::TensorSpec;

namespace {

// One model.safetensors with tensors a: BF16 [1000, 777] (byte i = (i * 7 + 3) mod 256) and b: F32 [13].
fs::path write_checkpoint(const std::string& tag) {
  const fs::path d = fs::temp_directory_path() / ("aipe_weights_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  const std::size_t a_bytes = 1000 * 777 * 2, b_bytes = 13 * 4;
  nlohmann::json h;
  h["a"] = {{"dtype", "BF16"}, {"shape", {1000, 777}}, {"data_offsets", {0, a_bytes}}};
  h["b"] = {{"dtype", "F32"}, {"shape", {13}}, {"data_offsets", {a_bytes, a_bytes + b_bytes}}};
  const std::string text = h.dump();
  std::ofstream o(d / "model.safetensors", std::ios::binary);
  const std::uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) o.put(static_cast<char>((n >> (8 * i)) & 0xff));
  o << text;
  for (std::size_t i = 0; i < a_bytes + b_bytes; ++i) o.put(static_cast<char>((i * 7 + 3) & 0xff));
  return d;
}

}  // namespace

TEST(WeightsGpu, LoadsCheckpointBitForBitThroughSmallStaging) {
  if (auto why = aipe::gpu_unavailable_reason()) GTEST_SKIP() << *why;
  const auto dir = write_checkpoint("ok");
  const Checkpoint ck = Checkpoint::open_dir(dir.string());
  DeviceWeights w({{"b", DType::F32, {13}}, {"a", DType::BF16, {1000, 777}}});
  aipe::Stream s;
  std::size_t calls = 0;
  const auto p = w.load(ck, s.get(), [&](const aipe::llm::LoadProgress&) { ++calls; }, std::size_t(1) << 20);
  EXPECT_EQ(calls, 2u);
  EXPECT_EQ(p.bytes_done, p.bytes_total);
  EXPECT_EQ(p.bytes_total, 1000u * 777 * 2 + 52);
  for (const char* name : {"a", "b"}) {
    const auto v = ck.tensor(name);
    std::vector<unsigned char> back(v.bytes, 0);
    ASSERT_EQ(cudaMemcpy(back.data(), w.raw(name), v.bytes, cudaMemcpyDeviceToHost), cudaSuccess);
    EXPECT_EQ(std::memcmp(back.data(), v.data, v.bytes), 0) << "tensor " << name << " differs after the load";
  }
  EXPECT_THROW(w.raw("c"), std::out_of_range);
}

TEST(WeightsGpu, FusedTensorConcatenatesItsPartsAlongRows) {
  if (auto why = aipe::gpu_unavailable_reason()) GTEST_SKIP() << *why;
  const auto dir = write_checkpoint("fused");
  const Checkpoint ck = Checkpoint::open_dir(dir.string());
  TensorSpec fused{"aa", DType::BF16, {2000, 777}, {"a", "a"}};
  DeviceWeights w({fused});
  aipe::Stream s;
  w.load(ck, s.get(), {}, std::size_t(1) << 20);
  const auto v = ck.tensor("a");
  std::vector<unsigned char> back(2 * v.bytes, 0);
  ASSERT_EQ(cudaMemcpy(back.data(), w.raw("aa"), back.size(), cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(std::memcmp(back.data(), v.data, v.bytes), 0) << "first part";
  EXPECT_EQ(std::memcmp(back.data() + v.bytes, v.data, v.bytes), 0) << "second part";
  DeviceWeights short_rows({{"aa", DType::BF16, {2001, 777}, {"a", "a"}}});
  EXPECT_THROW(short_rows.load(ck, s.get()), std::runtime_error);
}

TEST(WeightsGpu, WrongShapeOrMissingTensorNamesIt) {
  if (auto why = aipe::gpu_unavailable_reason()) GTEST_SKIP() << *why;
  const auto dir = write_checkpoint("bad");
  const Checkpoint ck = Checkpoint::open_dir(dir.string());
  aipe::Stream s;
  DeviceWeights shape({{"a", DType::BF16, {777, 1000}}});
  try {
    shape.load(ck, s.get());
    ADD_FAILURE() << "a wrong shape loaded";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("'a'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[777, 1000]"), std::string::npos) << e.what();
  }
  DeviceWeights missing({{"z", DType::BF16, {4}}});
  try {
    missing.load(ck, s.get());
    ADD_FAILURE() << "a missing tensor loaded";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("'z'"), std::string::npos) << e.what();
  }
}

TEST(WeightsGpu, SyntheticWeightsAreInRangeAndDistinctPerTensor) {
  if (auto why = aipe::gpu_unavailable_reason()) GTEST_SKIP() << *why;
  DeviceWeights w({{"m1", DType::BF16, {64, 4096}}, {"m2", DType::BF16, {64, 4096}}, {"norm", DType::BF16, {4096}}});
  aipe::Stream s;
  w.fill_synthetic({.seed = 7, .scale = 1.f}, s.get());
  AIPE_CUDA(cudaStreamSynchronize(s.get()));
  auto read = [&](const char* n, std::size_t count) {
    std::vector<__nv_bfloat16> h(count);
    AIPE_CUDA(cudaMemcpy(h.data(), w.raw(n), count * 2, cudaMemcpyDeviceToHost));
    std::vector<float> f(count);
    for (std::size_t i = 0; i < count; ++i) f[i] = __bfloat162float(h[i]);
    return f;
  };
  const auto m1 = read("m1", 64 * 4096), m2 = read("m2", 64 * 4096), norm = read("norm", 4096);
  const float a = 1.f / 64.f;  // 1 / sqrt(4096)
  double sq = 0;
  std::size_t same = 0;
  for (std::size_t i = 0; i < m1.size(); ++i) {
    ASSERT_LE(std::fabs(m1[i]), a * 1.01f) << "m1[" << i << "]";
    sq += double(m1[i]) * m1[i];
    same += m1[i] == m2[i];
  }
  // Uniform in [-a, a] has variance a^2 / 3.
  EXPECT_NEAR(sq / m1.size(), a * a / 3, a * a / 30);
  EXPECT_LT(same, m1.size() / 50) << "two tensors drew the same values";
  for (float v : norm) ASSERT_TRUE(v >= 0.97f && v <= 1.03f) << v;
}
