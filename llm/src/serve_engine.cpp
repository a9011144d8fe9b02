#include "aipe/llm/serve_engine.hpp"

#include <algorithm>
#include <stdexcept>
#include <utility>

#include "aipe/buffer.hpp"
#include "aipe/check.hpp"
#include "aipe/device.hpp"
#include "aipe/llm/engine.hpp"
#include "aipe/llm/loader.hpp"

namespace aipe::llm {
namespace {

// The continuous-batching engine with what it runs on, owned together and torn down in reverse: the model
// (weights, KV cache, step buffers), the stream every step runs on, the engine.
class GpuStepEngine final : public StepEngine {
 public:
  GpuStepEngine(LoadedModel m, const EngineOptions& opt, int device)
      : device_(device), loaded_(std::move(m)), engine_(*loaded_.model, opt, stream_.get()) {}

  const ModelInfo& info() const override { return engine_.info(); }
  const SchedulerConfig& scheduler_config() const override { return engine_.scheduler_config(); }
  void add_request(Request r) override { engine_.add_request(std::move(r)); }
  bool cancel(RequestId id) override { return engine_.cancel(id); }
  std::vector<TokenEvent> step(double now) override {
    // The server steps from its own thread, and the current device is a per-thread setting.
    AIPE_CUDA(cudaSetDevice(device_));
    return engine_.step(now);
  }
  bool has_unfinished() const override { return engine_.has_unfinished(); }
  SchedulerStats stats() const override { return engine_.stats(); }
  std::vector<FinishedRequest> take_finished() override { return engine_.take_finished(); }

 private:
  int device_;
  LoadedModel loaded_;
  Stream stream_;
  Engine engine_;
};

}  // namespace

ServeBackend make_gpu_engine(const ServeEngineOptions& o) {
  if (o.max_batch < 1 || o.max_batched_tokens < 1 || o.max_model_len < 0 || o.page_size < 1)
    throw std::invalid_argument("aipe serve: max_batch, max_batched_tokens and page_size must be >= 1, "
                                "max_model_len >= 0");
  if (auto why = gpu_unavailable_reason()) throw std::runtime_error("aipe serve --model " + o.model + ": " + *why);
  AIPE_CUDA(cudaSetDevice(o.device));
  LoadOptions lo;
  lo.gpu_memory = o.gpu_memory;
  lo.page_size = o.page_size;
  lo.seed = o.seed;
  lo.limits.max_tokens = std::max(o.max_batched_tokens, o.max_batch);
  lo.limits.max_seqs = o.max_batch;
  lo.limits.max_pages_per_seq = o.max_model_len > 0 ? (o.max_model_len + o.page_size - 1) / o.page_size : 0;
  LoadedModel m;
  {
    Stream s;
    m = load_model(o.model, lo, s.get());
  }
  const EngineOptions eo{.max_batched_tokens = o.max_batched_tokens,
                         .max_seqs = o.max_batch,
                         .prefix_caching = o.prefix_caching,
                         .eos_id = m.config.synthetic || m.generation.eos_token_ids.empty()
                                       ? TokenId(-1)
                                       : TokenId(m.generation.eos_token_ids.front())};
  ServeBackend b;
  b.tokenizer = std::move(m.tokenizer);
  b.engine = std::make_unique<GpuStepEngine>(std::move(m), eo, o.device);
  return b;
}

}  // namespace aipe::llm
