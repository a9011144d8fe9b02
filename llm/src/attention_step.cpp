#include "aipe/llm/attention_step.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "aipe/check.hpp"
#include "aipe/kernels/attention/decode.hpp"
#include "aipe/kernels/attention/gather_kv.hpp"

namespace aipe::llm {
namespace {

namespace ka = aipe::kernels::attention;
using bf16 = __nv_bfloat16;

}  // namespace

AttentionStepPlan plan_attention_step(const StepBatch& b) {
  if (b.seqs() == 0 || b.num_tokens() == 0) throw std::invalid_argument("attention step: an empty batch");
  if (b.context_lens.size() != b.q_lens.size())
    throw std::invalid_argument("attention step: q_lens and context_lens differ in length");
  AttentionStepPlan p;
  p.seqs = b.seqs();
  p.tokens = b.num_tokens();
  while (p.decodes < p.seqs && b.q_lens[std::size_t(p.decodes)] == 1) {
    const int ctx = b.context_lens[std::size_t(p.decodes)];
    p.decode_context += ctx;
    p.decode_max_context = std::max(p.decode_max_context, ctx);
    ++p.decodes;
  }
  p.cu_q.push_back(0);
  p.cu_kv.push_back(0);
  for (int s = p.decodes; s < p.seqs; ++s) {
    const int ql = b.q_lens[std::size_t(s)], ctx = b.context_lens[std::size_t(s)];
    if (ql < 1 || ctx < ql)
      throw std::invalid_argument("attention step: sequence " + std::to_string(s) + " has q_len " +
                                  std::to_string(ql) + " and context_len " + std::to_string(ctx));
    p.cu_q.push_back(p.cu_q.back() + ql);
    p.cu_kv.push_back(p.cu_kv.back() + ctx);
    p.max_q = std::max(p.max_q, ql);
    p.max_kv = std::max(p.max_kv, ctx);
    if (ctx != ql) p.from_start = false;
  }
  if (p.decodes + p.cu_q.back() != p.tokens)
    throw std::invalid_argument("attention step: q_lens add up to " + std::to_string(p.decodes + p.cu_q.back()) +
                                " tokens, the batch has " + std::to_string(p.tokens));
  return p;
}

AttentionStep::AttentionStep(const AttentionGeometry& g, const int* d_block_table, const int* d_context_lens,
                             const std::int64_t* d_slots)
    : g_(g), d_block_table_(d_block_table), d_context_lens_(d_context_lens), d_slots_(d_slots) {
  if (g_.heads < 1 || g_.kv_heads < 1 || g_.head_dim < 1 || g_.num_pages < 1 || g_.page_size < 1 ||
      g_.max_tokens < 1 || g_.max_seqs < 1 || g_.max_pages_per_seq < 1)
    throw std::invalid_argument("attention step: every geometry field must be positive");
  if (!d_block_table || !d_context_lens || !d_slots)
    throw std::invalid_argument("attention step: block_table, context_lens and slots must not be null");
  d_cu_q_ = DeviceBuffer<int>(std::size_t(g_.max_seqs) + 1);
  d_cu_kv_ = DeviceBuffer<int>(std::size_t(g_.max_seqs) + 1);
  h_cu_ = PinnedBuffer<int>(2 * (std::size_t(g_.max_seqs) + 1));
  decode_out_ = DeviceBuffer<bf16>(std::size_t(g_.max_seqs) * g_.heads * g_.head_dim);
}

void AttentionStep::plan(const StepBatch& b, cudaStream_t stream) {
  plan_ = plan_attention_step(b);
  graph_decode_ = false;
  if (plan_.prefills() == 0) return;
  // The pinned stage is reused every step: the previous step's copies must have left it.
  AIPE_CUDA(cudaStreamSynchronize(stream));
  const std::size_t n = plan_.cu_q.size();
  std::copy(plan_.cu_q.begin(), plan_.cu_q.end(), h_cu_.get());
  std::copy(plan_.cu_kv.begin(), plan_.cu_kv.end(), h_cu_.get() + n);
  AIPE_CUDA(cudaMemcpyAsync(d_cu_q_.get(), h_cu_.get(), n * sizeof(int), cudaMemcpyHostToDevice, stream));
  AIPE_CUDA(cudaMemcpyAsync(d_cu_kv_.get(), h_cu_.get() + n, n * sizeof(int), cudaMemcpyHostToDevice, stream));
  if (!plan_.from_start && std::size_t(plan_.cu_kv.back()) * g_.kv_heads * g_.head_dim > k_gathered_.size()) {
    // The stream was synchronized above: no earlier step still reads the old buffers.
    const std::size_t elems = std::size_t(plan_.cu_kv.back()) * g_.kv_heads * g_.head_dim;
    k_gathered_ = DeviceBuffer<bf16>();
    v_gathered_ = DeviceBuffer<bf16>();
    k_gathered_ = DeviceBuffer<bf16>(elems);
    v_gathered_ = DeviceBuffer<bf16>(elems);
  }
}

void AttentionStep::plan_decode(int seqs) {
  if (seqs < 1 || seqs > g_.max_seqs)
    throw std::invalid_argument("attention step: a decode step of " + std::to_string(seqs) + " sequences (limit " +
                                std::to_string(g_.max_seqs) + ")");
  plan_ = AttentionStepPlan{};
  plan_.seqs = plan_.tokens = plan_.decodes = seqs;
  plan_.decode_max_context = g_.max_pages_per_seq * g_.page_size;
  plan_.cu_q = plan_.cu_kv = {0};
  graph_decode_ = true;
}

std::int64_t AttentionStep::out_row_stride(std::int64_t q_row) const {
  return plan_.decode_only() ? std::int64_t(g_.heads) * g_.head_dim : q_row;
}

void AttentionStep::ensure_workspace(std::size_t bytes, cudaStream_t stream) {
  if (bytes <= workspace_.size()) return;
  // Grows outside a graph capture only: the engine runs one eager decode step of each batch size first.
  cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
  AIPE_CUDA(cudaStreamIsCapturing(stream, &cs));
  if (cs != cudaStreamCaptureStatusNone)
    throw std::logic_error("attention step: the decode workspace must be sized before a graph capture");
  // Graphs captured earlier hold the old workspace's address: it is kept, never freed while this step lives.
  // Doubling bounds what the retired ones add up to.
  retired_.push_back(std::move(workspace_));
  workspace_ = DeviceBuffer<unsigned char>(std::max(bytes, 2 * retired_.back().size()));
}

void AttentionStep::run(const AttentionLayer& a, cudaStream_t stream) {
  if (plan_.seqs == 0) throw std::logic_error("attention step: run() before plan()");
  const int d = g_.head_dim, nq = g_.heads * d, nkv = g_.kv_heads * d;
  const std::int64_t kv_row = a.kv_row > 0 ? a.kv_row : nkv;

  ka::AppendKvArgs ap{};
  ap.k_new = a.k;
  ap.v_new = a.v;
  ap.kv_row_stride = kv_row;
  ap.slot_mapping = d_slots_;
  ap.k_cache = a.k_cache;
  ap.v_cache = a.v_cache;
  ap.tokens = plan_.tokens;
  ap.num_pages = g_.num_pages;
  ap.page_size = g_.page_size;
  ap.kv_heads = g_.kv_heads;
  ap.d = d;
  ka::append_kv(ap, stream);

  ka::PagedKvCache cache{};
  cache.k = a.k_cache;
  cache.v = a.v_cache;
  cache.num_pages = g_.num_pages;
  cache.page_size = g_.page_size;
  cache.kv_heads = g_.kv_heads;
  cache.d = d;
  cache.max_pages_per_seq = g_.max_pages_per_seq;

  if (plan_.decodes > 0) {
    ka::DecodeArgs da{};
    da.q = a.q;
    da.q_row_stride = a.q_row;
    // A decode-only step writes the output packed, where the o_proj GEMM reads it; in a mixed step the decodes'
    // rows are moved to the q_row pitch that forward() gives the others.
    da.out = plan_.decode_only() ? a.out : decode_out_.get();
    da.cache = cache;
    da.cache.block_table = d_block_table_;
    da.cache.context_lens = d_context_lens_;
    da.batch = plan_.decodes;
    da.q_len = 1;
    da.heads = g_.heads;
    da.max_context = plan_.decode_max_context;
    da.total_context = graph_decode_ ? 0 : plan_.decode_context;
    da.scale = a.scale;
    da.sinks = a.sinks;
    da.window = a.mask == ka::MaskKind::sliding_window ? a.window : 0;
    const ka::DecodePlan dp = ka::decode_plan(da);
    ensure_workspace(dp.workspace_bytes, stream);
    da.workspace = workspace_.get();
    da.workspace_bytes = workspace_.size();
    ka::decode(da, stream);
    if (!plan_.decode_only())
      AIPE_CUDA(cudaMemcpy2DAsync(a.out, std::size_t(a.q_row) * sizeof(bf16), decode_out_.get(), nq * sizeof(bf16),
                                  nq * sizeof(bf16), std::size_t(plan_.decodes), cudaMemcpyDeviceToDevice, stream));
  }
  if (plan_.prefills() == 0) return;

  const int D = plan_.decodes, total_q = plan_.cu_q.back();
  ka::ForwardArgs fa{};
  fa.dtype = ka::DType::bf16;
  fa.q = a.q + std::size_t(D) * a.q_row;  // a decode has one token: the chunks' rows start at token D
  fa.o = a.out + std::size_t(D) * a.q_row;
  fa.q_row = a.q_row;
  fa.q_head = d;
  if (plan_.from_start) {
    fa.k = a.k + std::size_t(D) * kv_row;
    fa.v = a.v + std::size_t(D) * kv_row;
    fa.kv_row = kv_row;
  } else {
    ka::GatherKvArgs ga{};
    ga.cache = cache;
    ga.cache.block_table = d_block_table_ + std::size_t(D) * g_.max_pages_per_seq;
    ga.cu_seqlens = d_cu_kv_.get();
    ga.batch = plan_.prefills();
    ga.max_len = plan_.max_kv;
    ga.total = plan_.cu_kv.back();
    ga.k_out = k_gathered_.get();
    ga.v_out = v_gathered_.get();
    ka::gather_kv(ga, stream);
    fa.k = k_gathered_.get();
    fa.v = v_gathered_.get();
    fa.kv_row = nkv;
  }
  fa.kv_head = d;
  fa.batch = plan_.prefills();
  fa.heads = g_.heads;
  fa.kv_heads = g_.kv_heads;
  fa.seq_q = plan_.max_q;
  fa.seq_kv = plan_.max_kv;
  fa.d = d;
  fa.cu_seqlens_q = d_cu_q_.get();
  fa.cu_seqlens_kv = plan_.from_start ? d_cu_q_.get() : d_cu_kv_.get();
  fa.total_q = total_q;
  fa.total_kv = plan_.from_start ? total_q : plan_.cu_kv.back();
  fa.scale = a.scale;
  fa.mask = a.mask;
  fa.window = a.window;
  fa.sinks = a.sinks;
  ka::forward(fa, stream);
}

}  // namespace aipe::llm
