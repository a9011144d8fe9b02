// aipe::kernels::attention::forward: the prefill / training forward pass of scaled dot-product attention on
// Hopper (kernels/src/attention_forward.cu), the call prefill, the ch18 ladder and the engine make.
//
//   O = softmax(scale * Q K^T + mask) V        per (batch, query head); FP32 softmax statistics
//   LSE[b][h][q] = log(sum_kv exp(scale * q.k))  natural log, over the visible keys (and the sink, if any)
//
// Layouts (elements; the head dimension d is contiguous, every other stride is given):
//   Q, O  [b][seq_q][heads][d]        K, V  [b][seq_kv][kv_heads][d]          LSE  [b][heads][seq_q] FP32
// Query head h reads KV head h / (heads / kv_heads): MHA (kv_heads == heads), GQA, MQA (kv_heads == 1).
// Variable-length packed batches (flash_attn_varlen): cu_seqlens_q / cu_seqlens_kv hold batch + 1 cumulative
// offsets into a packed [total_tokens][heads][d] tensor (batch strides are then ignored); sequence i spans
// rows [cu[i], cu[i+1]) and seq_q / seq_kv are the maxima. Both arrays are given, or neither. total_q / total_kv
// (added for varlen: the rows of the packed tensors, so that the kernel's TMA reads stop at the tensors' ends
// without reading cu[batch] back from the device) must be given with them. LSE keeps its [b][heads][seq_q]
// layout, seq_q the maximum: sequence i's rows are LSE[i][h][0 .. len_i), the rest is not written.
// The masks align each sequence bottom-right on its own lengths.
// Masks: none, causal aligned bottom-right (query q sees key kv iff kv <= q + seq_kv_i - seq_q_i), sliding
// window (causal, and kv > q + offset - window), learned sink logits per head (joining the denominator only).
// A row that sees no key (and has no sink) gets O = 0 and LSE = -inf.
//
// What the kernel needs (checked; std::invalid_argument naming the rule otherwise): d in {64, 128, 256} for BF16,
// {64, 128} for FP16; heads % kv_heads == 0; base pointers 16-byte aligned and every stride a multiple of 8
// elements (TMA), a stride along which more than one index exists at least d; scale > 0 (or 0: 1/sqrt(d)).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace aipe::kernels::attention {

enum class DType : std::uint8_t { bf16, fp16 };
enum class MaskKind : std::uint8_t { none, causal, sliding_window };

// The techniques the kernel stacks, selectable so that the ch18 ladder can show each one's contribution on the
// same problem. Production calls take the default (everything on).
struct ForwardSchedule {
  bool pingpong = true;        // the two consumer warpgroups alternate: one's softmax under the other's GEMMs
  bool intra_overlap = true;   // within a warpgroup: issue the next tile's Q.K^T before this tile's softmax
  bool persistent = true;      // one CTA per SM over a longest-first (causal-aware) tile queue
};

struct ForwardArgs {
  DType dtype = DType::bf16;
  const void *q = nullptr, *k = nullptr, *v = nullptr;
  void* o = nullptr;
  float* lse = nullptr;  // may be null
  std::int64_t q_batch = 0, q_row = 0, q_head = 0;     // Q strides (and O's: O has Q's layout)
  std::int64_t kv_batch = 0, kv_row = 0, kv_head = 0;  // K and V strides
  int batch = 0, heads = 0, kv_heads = 0, seq_q = 0, seq_kv = 0, d = 0;
  const int* cu_seqlens_q = nullptr;   // [batch + 1] device, or null (fixed-length batch)
  const int* cu_seqlens_kv = nullptr;  // [batch + 1] device, or null
  int total_q = 0, total_kv = 0;       // varlen only: rows of the packed Q / O and K / V tensors
  float scale = 0.f;                   // 0: 1/sqrt(d)
  MaskKind mask = MaskKind::none;
  int window = 0;                      // sliding_window: keys strictly within `window` positions of the query
  const float* sinks = nullptr;        // [heads] learned sink logits, or null
  ForwardSchedule schedule{};
};

// Throws std::invalid_argument for a problem the kernel cannot take; launches on `stream` otherwise.
void forward(const ForwardArgs& args, cudaStream_t stream);

// The same checks, without launching (CPU-testable).
void check_forward_args(const ForwardArgs& args);

}  // namespace aipe::kernels::attention
