#include "aipe/llm/weights.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "aipe/buffer.hpp"
#include "aipe/check.hpp"
#include "aipe/random.hpp"

namespace aipe::llm {
namespace {

std::string shape_str(const std::vector<std::int64_t>& s) {
  std::ostringstream o;
  o << '[';
  for (std::size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << ']';
  return o.str();
}

// MXFP4 tensors (aipe/kernels/moe.hpp's format: U8 `*_blocks` [..][K/32][16] and `*_scales` [..][K/32]): random
// E2M1 codes (two per byte, every bit pattern equally likely: RMS value sqrt(68.5/8) = 2.93) and one E8M0 exponent
// for every block, 2^e with e chosen so that the elements' RMS is that of the BF16 matrices' uniform draw,
// scale / sqrt(3 K). K = 2880: 0.0108 / 2.93 = 2^-8.1, so e = -8 (byte 119).
void fill_mxfp4(const TensorSpec& s, void* p, std::size_t n, std::uint64_t seed, float scale, cudaStream_t stream) {
  auto ends = [&](const char* suffix) {
    const std::string x = suffix;
    return s.name.size() >= x.size() && s.name.compare(s.name.size() - x.size(), x.size(), x) == 0;
  };
  if (ends("_blocks") && s.shape.size() >= 2 && s.shape.back() == 16 && n % 4 == 0) {
    // 32 random bits per int: the full int range (span 2^32).
    fill_uniform_int(static_cast<int*>(p), n / 4, seed, std::numeric_limits<int>::min(),
                     std::numeric_limits<int>::max(), stream);
  } else if (ends("_scales") && !s.shape.empty()) {
    const double k = double(s.shape.back()) * 32.0;
    const double e = std::round(std::log2(double(scale) / std::sqrt(3.0 * k) / std::sqrt(68.5 / 8.0)));
    const int byte = int(std::clamp(127.0 + e, 1.0, 254.0));
    AIPE_CUDA(cudaMemsetAsync(p, byte, n, stream));
  } else {
    throw std::invalid_argument("synthetic weights: U8 tensor '" + s.name +
                                "' is neither MXFP4 blocks ([..][16], *_blocks) nor scales (*_scales)");
  }
}

}  // namespace

std::size_t TensorSpec::bytes() const {
  std::size_t n = dtype_size(dtype);
  for (auto d : shape) {
    if (d < 0) throw std::invalid_argument("tensor '" + name + "': negative dimension in " + shape_str(shape));
    if (d != 0 && n > std::numeric_limits<std::size_t>::max() / std::size_t(d))
      throw std::invalid_argument("tensor '" + name + "': size of " + shape_str(shape) + " overflows");
    n *= std::size_t(d);
  }
  return n;
}

ArenaLayout plan_arena(const std::vector<TensorSpec>& specs, std::size_t align) {
  if (align == 0 || (align & (align - 1)) != 0)
    throw std::invalid_argument("arena alignment " + std::to_string(align) + " is not a power of two");
  ArenaLayout l;
  for (const auto& s : specs) {
    if (s.name.empty()) throw std::invalid_argument("a weight tensor without a name");
    const std::size_t b = s.bytes();
    const std::size_t at = (l.total + align - 1) & ~(align - 1);
    if (at < l.total || at + b < at) throw std::invalid_argument("weights arena size overflows at '" + s.name + "'");
    if (!l.offset.emplace(s.name, at).second) throw std::invalid_argument("weight tensor '" + s.name + "' listed twice");
    l.total = at + b;
  }
  return l;
}

DeviceWeights::DeviceWeights(std::vector<TensorSpec> specs) : specs_(std::move(specs)) {
  layout_ = plan_arena(specs_);
  for (std::size_t i = 0; i < specs_.size(); ++i) index_[specs_[i].name] = i;
  if (layout_.total) base_ = static_cast<std::byte*>(device_malloc(layout_.total));
}

DeviceWeights::~DeviceWeights() { release(); }
void DeviceWeights::release() noexcept {
  if (base_) cudaFree(base_);
  base_ = nullptr;
}
DeviceWeights::DeviceWeights(DeviceWeights&& o) noexcept
    : specs_(std::move(o.specs_)), index_(std::move(o.index_)), layout_(std::move(o.layout_)), base_(o.base_) {
  o.base_ = nullptr;
}
DeviceWeights& DeviceWeights::operator=(DeviceWeights&& o) noexcept {
  if (this != &o) {
    release();
    specs_ = std::move(o.specs_);
    index_ = std::move(o.index_);
    layout_ = std::move(o.layout_);
    base_ = o.base_;
    o.base_ = nullptr;
  }
  return *this;
}

const TensorSpec& DeviceWeights::spec(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw std::out_of_range("the model has no weight tensor '" + name + "'");
  return specs_[it->second];
}
void* DeviceWeights::raw(const std::string& name) const {
  auto it = layout_.offset.find(name);
  if (it == layout_.offset.end()) throw std::out_of_range("the model has no weight tensor '" + name + "'");
  return base_ + it->second;
}

LoadProgress DeviceWeights::load(const Checkpoint& ckpt, cudaStream_t stream,
                                 const std::function<void(const LoadProgress&)>& progress, std::size_t staging_bytes) {
  // Check everything before the first byte moves: a bad checkpoint fails fast and leaves nothing half-loaded
  // that could be mistaken for a model.
  struct Piece {
    TensorView view;
    std::size_t dst_offset;  // within the spec's tensor
  };
  std::vector<std::vector<Piece>> pieces(specs_.size());
  LoadProgress p;
  p.tensors_total = specs_.size();
  for (std::size_t i = 0; i < specs_.size(); ++i) {
    const TensorSpec& s = specs_[i];
    const std::vector<std::string> names = s.parts.empty() ? std::vector<std::string>{s.name} : s.parts;
    std::int64_t rows = 0;
    std::size_t at = 0;
    for (const auto& name : names) {
      if (!ckpt.has(name)) throw std::runtime_error("checkpoint: tensor '" + name + "' is missing");
      TensorView v = ckpt.tensor(name);
      std::vector<std::int64_t> want = s.shape;
      if (!s.parts.empty() && !want.empty() && !v.shape.empty()) want[0] = v.shape[0];  // checked in sum below
      if (v.dtype != s.dtype || v.shape != want)
        throw std::runtime_error(ckpt.file_of(name) + ": tensor '" + name + "' is " + dtype_name(v.dtype) + " " +
                                 shape_str(v.shape) + ", the model expects " + dtype_name(s.dtype) + " " +
                                 shape_str(want) + (s.parts.empty() ? "" : " (a part of '" + s.name + "')"));
      rows += v.shape.empty() ? 1 : v.shape[0];
      pieces[i].push_back({v, at});
      at += v.bytes;
      p.bytes_total += v.bytes;
    }
    if (!s.parts.empty() && (s.shape.empty() || rows != s.shape[0] || at != s.bytes()))
      throw std::runtime_error("checkpoint: the parts of '" + s.name + "' have " + std::to_string(rows) +
                               " rows, the model expects " + shape_str(s.shape));
  }
  staging_bytes = std::max<std::size_t>(staging_bytes, 1 << 20);
  PinnedBuffer<std::byte> stage[2] = {PinnedBuffer<std::byte>(staging_bytes), PinnedBuffer<std::byte>(staging_bytes)};
  Event done[2] = {Event(cudaEventDisableTiming), Event(cudaEventDisableTiming)};
  bool used[2] = {false, false};
  int cur = 0;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    for (std::size_t i = 0; i < specs_.size(); ++i) {
      for (const Piece& piece : pieces[i]) {
        const TensorView& v = piece.view;
        std::byte* dst = static_cast<std::byte*>(raw(specs_[i].name)) + piece.dst_offset;
        for (std::size_t off = 0; off < v.bytes; off += staging_bytes) {
          const std::size_t n = std::min(staging_bytes, v.bytes - off);
          // The buffer's previous copy must have left before the CPU overwrites it; meanwhile the other buffer's
          // copy is in flight, so the memcpy out of the mapping below overlaps a DMA.
          if (used[cur]) AIPE_CUDA(cudaEventSynchronize(done[cur].get()));
          std::memcpy(stage[cur].get(), v.data + off, n);
          AIPE_CUDA(cudaMemcpyAsync(dst + off, stage[cur].get(), n, cudaMemcpyHostToDevice, stream));
          AIPE_CUDA(cudaEventRecord(done[cur].get(), stream));
          used[cur] = true;
          cur ^= 1;
          p.bytes_done += n;
        }
      }
      ++p.tensors_done;
      p.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (progress) progress(p);
    }
    AIPE_CUDA(cudaStreamSynchronize(stream));
  } catch (...) {
    cudaStreamSynchronize(stream);  // no copy may still read the staging buffers when they are freed
    throw;
  }
  p.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return p;
}

void DeviceWeights::fill_synthetic(const SyntheticInit& init, cudaStream_t stream) {
  for (std::size_t i = 0; i < specs_.size(); ++i) {
    const TensorSpec& s = specs_[i];
    std::size_t n = 1;
    for (auto d : s.shape) n *= std::size_t(d);
    if (n == 0) continue;
    const bool vector = s.shape.size() <= 1;
    const float fan_in = s.shape.empty() ? 1.f : float(s.shape.back());
    const float a = vector ? 0.02f : init.scale / std::sqrt(fan_in);
    const float lo = vector ? 1.f - a : -a, hi = vector ? 1.f + a : a;
    const std::uint64_t seed = init.seed * 0x9E3779B97F4A7C15ull + i;  // a distinct stream per tensor
    void* p = raw(s.name);
    switch (s.dtype) {
      case DType::BF16: fill_uniform(static_cast<__nv_bfloat16*>(p), n, seed, lo, hi, stream); break;
      case DType::F16: fill_uniform(static_cast<__half*>(p), n, seed, lo, hi, stream); break;
      case DType::F32: fill_uniform(static_cast<float*>(p), n, seed, lo, hi, stream); break;
      case DType::F8_E4M3: fill_uniform(static_cast<__nv_fp8_e4m3*>(p), n, seed, lo, hi, stream); break;
      case DType::U8: fill_mxfp4(s, p, n, seed, init.scale, stream); break;
      default:
        throw std::invalid_argument(std::string("synthetic weights: no generator for dtype ") + dtype_name(s.dtype) +
                                    " (tensor '" + s.name + "')");
    }
  }
  AIPE_CUDA(cudaGetLastError());
}

}  // namespace aipe::llm
