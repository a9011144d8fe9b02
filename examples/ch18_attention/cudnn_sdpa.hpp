// The cudnn rung of ch18/attention_forward: cuDNN's fused flash attention, reached through the cuDNN 9 graph
// (backend) API. The graph is the one cuDNN's runtime fusion engine recognises as scaled dot-product attention
// (the composite that cudnn-frontend's SDPA node expands into), built here descriptor by descriptor:
//
//   S     = Q . K^T                      matmul, FP32 out     Q [b][h][s_q][d], K^T [b][h_kv][d][s_kv] (GQA:
//                                                             h_kv < h, the engine maps heads h -> h / (h / h_kv))
//   S     = S * scale                    pointwise MUL by a by-value scalar
//   (causal, aligned bottom-right)  row = GEN_INDEX(S, axis 2), col = GEN_INDEX(S, axis 3),
//         row' = row + s_kv - s_q,  keep = row' >= col,  S = keep ? S : -inf      (BINARY_SELECT)
//   m     = max_kv S                     reduction MAX -> [b][h][s_q][1]
//   E     = exp(S - m),  l = sum_kv E    pointwise SUB, EXP, reduction ADD
//   LSE   = m + log(l)                   the softmax statistics, an output: [b][h][s_q][1] FP32 (the training
//                                        graph; the inference graph without it is tried where that fails)
//   P     = E / l                        pointwise DIV, P in BF16 (the second matmul's A type)
//   O     = P . V                        matmul, BF16 out     V [b][h_kv][s_kv][d], O [b][h][s_q][d]
//
// Every tensor keeps aipe's layout ([b][s][h][d] in memory): the descriptors give dims in cuDNN's b, h, s, d
// order with the matching strides. The intermediates are virtual: the fused engine never writes S or P.
//
// cuDNN is loaded at run time (dlopen), so the binary runs where it is absent and the rung says why it is
// skipped: the library found at configure time (AIPE_CUDNN_LIBRARY), then libcudnn.so.9 from the loader's
// path, then PyTorch's copy. Graph, heuristic or plan failures are reported with cuDNN's own message.
#pragma once

#if AIPE_HAVE_CUDNN
#include <cudnn_graph.h>
#endif
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>
#include <vector>

namespace aipe::ch18 {

struct CudnnSdpaProblem {
  int batch = 0, heads = 0, kv_heads = 0, seq_q = 0, seq_kv = 0, d = 0;
  bool causal = false;
  float scale = 1.f;
  // Strides in elements of aipe's [b][s][h][d] layouts; d is contiguous.
  std::int64_t q_batch = 0, q_row = 0, q_head = 0;
  std::int64_t kv_batch = 0, kv_row = 0, kv_head = 0;
};

// One built plan: workspace, the tensors bound at run time, the handle.
class CudnnSdpa {
 public:
  CudnnSdpa() = default;
  CudnnSdpa(const CudnnSdpa&) = delete;
  CudnnSdpa& operator=(const CudnnSdpa&) = delete;
  ~CudnnSdpa();

  // Builds the graph and a plan for `p`; returns "" on success, otherwise why the rung cannot run (no cuDNN,
  // cuDNN's message for a graph it rejects). Needs a GPU (cuDNN's heuristics query the device).
  std::string build(const CudnnSdpaProblem& p);
  // Bytes of device workspace the plan needs (valid after a successful build).
  std::size_t workspace_bytes() const { return workspace_bytes_; }
  // Whether the plan writes the LSE (the training graph) or not (the inference graph, tried second).
  bool has_lse() const { return has_lse_; }
  // Enqueues one forward pass on `stream`: q, k, v, o BF16 in aipe's layouts, lse [b][h][s_q] FP32.
  void run(const void* q, const void* k, const void* v, void* o, float* lse, void* workspace, cudaStream_t stream);
  // "cuDNN 9.19.0 (<library path>)" once loaded.
  const std::string& library() const { return library_; }

 private:
  void release();
  std::string build_graph(const CudnnSdpaProblem& p, bool stats);
  bool has_lse_ = false;
  void* handle_ = nullptr;  // cudnnHandle_t
  void* plan_ = nullptr;    // execution plan descriptor
  std::vector<void*> owned_;  // every descriptor the graph holds, destroyed with it
  std::size_t workspace_bytes_ = 0;
  float scale_ = 1.f;
  std::int32_t s_kv_ = 0, s_q_ = 0;
  float neg_inf_ = 0;
  std::vector<std::int64_t> scalar_uids_;  // the by-value scalars this graph reads (scale; the mask's)
  std::string library_;
};

}  // namespace aipe::ch18
