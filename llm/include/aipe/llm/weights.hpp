#pragma once
// Model weights on the GPU: one device allocation (an arena) holding every tensor of a model at 256-byte aligned
// offsets, filled either from a checkpoint (streamed through two pinned staging buffers, so reading the mmapped
// file and the PCIe/NVLink-C2C copy overlap) or with synthetic random values of the exact shapes (for
// benchmarking a model's shapes without its files). The model code asks for tensors by name; a name the arena
// does not hold is an error naming it, never a null pointer.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "aipe/llm/safetensors.hpp"

namespace aipe::llm {

struct TensorSpec {
  std::string name;
  DType dtype = DType::BF16;
  std::vector<std::int64_t> shape;
  // Checkpoint tensors concatenated along dimension 0 into this one (a fused QKV or gate_up projection, so one
  // GEMM reads them); empty: the checkpoint tensor of the same name.
  std::vector<std::string> parts;
  std::size_t bytes() const;  // product(shape) x dtype size; throws std::invalid_argument on overflow / bad dims
};

// Where each tensor sits in the arena. Pure function of the specs (CPU-tested): offsets in spec order, each
// aligned to `align` bytes (a power of two); duplicate names and empty names are std::invalid_argument.
struct ArenaLayout {
  std::map<std::string, std::size_t> offset;
  std::size_t total = 0;
};
ArenaLayout plan_arena(const std::vector<TensorSpec>& specs, std::size_t align = 256);

// How synthetic weights are drawn: uniform in [-a, a] with a = scale / sqrt(fan_in) for matrices (fan_in = the
// last dimension: nn.Linear's in_features), 1 +- 0.02 for vectors (norm weights), so activations stay O(1)
// through many layers and the numbers a synthetic model produces are finite and meaningful to time. MXFP4 tensors
// (U8 *_blocks and *_scales) get random E2M1 codes and one exponent per block that gives the elements the same RMS.
struct SyntheticInit {
  std::uint64_t seed = 1;
  float scale = 1.f;
};

struct LoadProgress {
  std::size_t bytes_done = 0, bytes_total = 0;
  std::size_t tensors_done = 0, tensors_total = 0;
  double seconds = 0;
};

class DeviceWeights {
 public:
  DeviceWeights() = default;
  explicit DeviceWeights(std::vector<TensorSpec> specs);  // allocates the arena (CudaError naming the size on OOM)
  ~DeviceWeights();
  DeviceWeights(const DeviceWeights&) = delete;
  DeviceWeights& operator=(const DeviceWeights&) = delete;
  DeviceWeights(DeviceWeights&& o) noexcept;
  DeviceWeights& operator=(DeviceWeights&& o) noexcept;

  // Copies every tensor from the checkpoint; each must exist there with the spec's dtype and shape (an error names
  // the tensor, the file, what was expected and what was found); a fused tensor's parts must share its dtype and
  // trailing dimensions, and their first dimensions must add up to its own. `staging_bytes` per pinned buffer (two of them).
  // The callback, if given, is called after each tensor. Returns the final progress (seconds = wall time).
  LoadProgress load(const Checkpoint& ckpt, cudaStream_t stream,
                    const std::function<void(const LoadProgress&)>& progress = {},
                    std::size_t staging_bytes = std::size_t(64) << 20);
  void fill_synthetic(const SyntheticInit& init, cudaStream_t stream);

  bool has(const std::string& name) const { return layout_.offset.count(name) != 0; }
  const TensorSpec& spec(const std::string& name) const;
  void* raw(const std::string& name) const;  // throws std::out_of_range naming the tensor
  template <class T>
  T* get(const std::string& name) const { return static_cast<T*>(raw(name)); }
  std::size_t bytes() const { return layout_.total; }
  const std::vector<TensorSpec>& specs() const { return specs_; }

 private:
  void release() noexcept;
  std::vector<TensorSpec> specs_;
  std::map<std::string, std::size_t> index_;  // name -> specs_ index
  ArenaLayout layout_;
  std::byte* base_ = nullptr;
};

}  // namespace aipe::llm
