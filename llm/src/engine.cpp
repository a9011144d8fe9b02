#include "aipe/llm/engine.hpp"

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>

#include "aipe/check.hpp"

namespace aipe::llm {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

const char* output_reason(FinishReason r) {
  switch (r) {
    case FinishReason::eos:
    case FinishReason::stop_token: return "stop";
    case FinishReason::max_tokens:
    case FinishReason::context_limit: return "length";
    case FinishReason::cancelled: return "cancelled";
    case FinishReason::none: break;
  }
  return "none";
}

}  // namespace

StepBatch to_step_batch(const StepPlan& plan, int max_pages_per_seq, std::vector<int>* sample_seqs) {
  if (max_pages_per_seq < 1) throw std::invalid_argument("to_step_batch: max_pages_per_seq must be >= 1");
  const FlatBatch f = flatten(plan, max_pages_per_seq);
  StepBatch b;
  b.tokens.assign(f.tokens.begin(), f.tokens.end());
  b.positions.assign(f.positions.begin(), f.positions.end());
  b.slots.assign(f.slots.begin(), f.slots.end());
  b.context_lens.assign(f.seq_lens.begin(), f.seq_lens.end());
  for (std::size_t s = 0; s + 1 < f.query_start.size(); ++s) b.q_lens.push_back(f.query_start[s + 1] - f.query_start[s]);
  b.block_table.resize(f.block_tables.size());
  std::transform(f.block_tables.begin(), f.block_tables.end(), b.block_table.begin(),
                 [](PageId p) { return p < 0 ? 0 : int(p); });
  if (sample_seqs) {
    sample_seqs->clear();
    for (std::size_t s = 0; s < plan.seqs.size(); ++s)
      if (plan.seqs[s].sample) sample_seqs->push_back(int(s));
  }
  return b;
}

SchedulerConfig scheduler_config_for(const ModelInfo& info, const ModelLimits& lim, const EngineOptions& opt) {
  if (opt.max_batched_tokens < 0 || opt.max_batched_tokens > lim.max_tokens)
    throw std::invalid_argument("engine: max_batched_tokens " + std::to_string(opt.max_batched_tokens) +
                                " must be in [1, the model's step limit of " + std::to_string(lim.max_tokens) +
                                "] (0: that limit)");
  if (opt.max_seqs < 0 || opt.max_seqs > lim.max_seqs)
    throw std::invalid_argument("engine: max_seqs " + std::to_string(opt.max_seqs) + " must be in [1, " +
                                std::to_string(lim.max_seqs) + "] (0: the model's limit)");
  if (!(opt.watermark >= 0 && opt.watermark < 1))
    throw std::invalid_argument("engine: watermark must be in [0, 1)");
  if (info.page_size < 1 || info.num_pages < 1 || lim.max_pages_per_seq < 1)
    throw std::invalid_argument("engine: the model has no KV cache");
  SchedulerConfig c;
  c.max_num_batched_tokens = opt.max_batched_tokens ? opt.max_batched_tokens : lim.max_tokens;
  // Every running decode must fit one step's budget.
  c.max_num_seqs = opt.max_seqs ? opt.max_seqs : std::min(lim.max_seqs, c.max_num_batched_tokens);
  const long long table = static_cast<long long>(lim.max_pages_per_seq) * info.page_size;
  const long long watermark_pages = static_cast<long long>(opt.watermark * info.num_pages);
  const long long cache = (static_cast<long long>(info.num_pages) - watermark_pages) * info.page_size;
  c.max_model_len = int(std::min({static_cast<long long>(info.max_positions), table, cache}));
  if (c.max_model_len < 1) throw std::invalid_argument("engine: the KV cache leaves no room above its watermark");
  c.enable_chunked_prefill = opt.chunked_prefill;
  c.eos_id = opt.eos_id;
  c.vocab_size = info.vocab;
  return c;
}

BlockManagerConfig block_manager_config_for(const ModelInfo& info, const EngineOptions& opt) {
  return {.num_pages = info.num_pages, .page_size = info.page_size, .watermark = opt.watermark,
          .enable_prefix_caching = opt.prefix_caching && prefix_caching_available()};
}

Engine::Engine(Model& model, const EngineOptions& opt, cudaStream_t stream)
    : model_(model),
      opt_(opt),
      stream_(stream),
      sched_(scheduler_config_for(model.info(), model.limits(), opt), block_manager_config_for(model.info(), opt)) {
  const int S = model_.limits().max_seqs;
  graphs_.resize(std::size_t(S) + 1);
  d_params_ = DeviceBuffer<kernels::SamplingParams>(S);
  d_next_ = DeviceBuffer<int>(S);
  h_params_ = PinnedBuffer<kernels::SamplingParams>(S);
  h_next_ = PinnedBuffer<int>(S);
}

void Engine::run_model(const StepBatch& b, bool decode_only) {
  const int S = b.seqs();
  last_.graph = false;
  if (!decode_only || !opt_.cuda_graphs) {
    model_.step(b, stream_);
    return;
  }
  model_.upload(b, stream_);
  GraphExec& g = graphs_[std::size_t(S)];
  if (!g.get()) {
    // One eager run sizes every buffer the step uses (the decode workspace); the capture that follows records
    // the same launches against the same addresses. This step's result comes from the eager run.
    model_.run_decode(S, stream_);
    Graph graph = Graph::capture(stream_, [&](cudaStream_t s) { model_.run_decode(S, s); });
    g = GraphExec(graph.get());
    ++graphs_captured_;
    return;
  }
  AIPE_CUDA(cudaGraphLaunch(g.get(), stream_));
  last_.graph = true;
}

std::vector<TokenEvent> Engine::step(double now) {
  const StepPlan plan = sched_.schedule(now);
  last_ = StepRecord{};
  if (plan.empty()) return sched_.update(plan, {}, now);
  std::vector<int> sample_seqs;
  const StepBatch b = to_step_batch(plan, model_.limits().max_pages_per_seq, &sample_seqs);
  const int S = b.seqs();
  const bool decode_only = std::all_of(b.q_lens.begin(), b.q_lens.end(), [](int q) { return q == 1; });
  last_.seqs = S;
  last_.tokens = b.num_tokens();
  last_.decode_only = decode_only;
  run_model(b, decode_only);

  // Every row is sampled (rows that end mid-prompt greedily, and ignored): one launch, no gather of rows.
  for (int s = 0; s < S; ++s) {
    const ScheduledSeq& q = plan.seqs[std::size_t(s)];
    kernels::SamplingParams p{.temperature = 0.f};
    if (q.sample) {
      p.temperature = q.sampling.temperature;
      p.top_k = q.sampling.top_k;
      p.top_p = q.sampling.top_p;
      p.seed = q.sampling.seed;
      p.counter = std::uint64_t(q.num_output_tokens);
    }
    h_params_.get()[s] = p;
  }
  const int V = model_.info().vocab;
  AIPE_CUDA(cudaMemcpyAsync(d_params_.get(), h_params_.get(), std::size_t(S) * sizeof(kernels::SamplingParams),
                            cudaMemcpyHostToDevice, stream_));
  kernels::sample(model_.logits(), V, S, V, d_params_.get(), d_next_.get(), stream_);
  AIPE_CUDA(cudaMemcpyAsync(h_next_.get(), d_next_.get(), std::size_t(S) * sizeof(int), cudaMemcpyDeviceToHost,
                            stream_));
  AIPE_CUDA(cudaStreamSynchronize(stream_));
  if (model_.take_error(stream_)) throw std::runtime_error("engine: a token id or position went out of range");
  std::vector<TokenId> sampled;
  sampled.reserve(sample_seqs.size());
  for (int s : sample_seqs) {
    const int tok = h_next_.get()[s];
    if (tok < 0 || tok >= V) throw std::runtime_error("engine: the sampler returned token " + std::to_string(tok));
    sampled.push_back(tok);
  }
  return sched_.update(plan, sampled, now);
}

std::vector<GenerationOutput> Engine::generate(const std::vector<GenerationRequest>& reqs) {
  if (sched_.has_unfinished()) throw std::logic_error("engine: generate() needs an idle engine");
  const int n = int(reqs.size());
  std::vector<GenerationOutput> out(static_cast<std::size_t>(n));
  if (n == 0) return out;
  // Requests by arrival step; ids are the request indices (the engine is idle, so none is in use).
  std::vector<int> order(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) order[std::size_t(i)] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return reqs[std::size_t(a)].arrival_step < reqs[std::size_t(b)].arrival_step; });
  auto to_request = [&](int i) {
    const GenerationRequest& g = reqs[std::size_t(i)];
    Request r;
    r.id = i;
    r.prompt.assign(g.prompt.begin(), g.prompt.end());
    r.sampling = g.sampling;
    r.max_tokens = g.max_new_tokens;
    r.stop_ids.assign(g.stop_ids.begin(), g.stop_ids.end());
    return r;
  };
  // Every request is checked before any runs: a bad one is an error naming it, and nothing is left queued.
  {
    SchedulerConfig c = sched_.config();
    Scheduler probe(c, {.num_pages = sched_.block_manager().num_pages(),
                        .page_size = sched_.block_manager().page_size(),
                        .watermark = opt_.watermark});
    for (int i = 0; i < n; ++i) {
      if (reqs[std::size_t(i)].arrival_step < 0)
        throw std::invalid_argument("generation: request " + std::to_string(i) + ": arrival_step must be >= 0");
      try {
        probe.add_request(to_request(i));
      } catch (const std::invalid_argument& e) {
        throw std::invalid_argument(std::string("generation: ") + e.what());
      }
    }
  }

  gen_stats_ = GenerationStats{};
  const std::uint64_t preempted0 = sched_.stats().num_preemptions;
  std::vector<double> joined(std::size_t(n), 0.0);
  std::size_t next = 0;
  int remaining = n;
  const auto t0 = Clock::now();
  for (int k = 0; remaining > 0; ++k) {
    for (; next < order.size() && reqs[std::size_t(order[next])].arrival_step <= k; ++next) {
      joined[std::size_t(order[next])] = since(t0);
      sched_.add_request(to_request(order[next]));
    }
    const auto ts = Clock::now();
    if (!sched_.has_unfinished() && next == order.size())
      throw std::logic_error("engine: " + std::to_string(remaining) + " requests never finished");
    const std::vector<TokenEvent> events = step(since(t0));
    const double t = since(t0);
    if (last_.seqs > 0) {
      ++gen_stats_.steps;
      if (last_.decode_only) {
        gen_stats_.decode_step_s.push_back(since(ts));
        gen_stats_.decode_step_batch.push_back(last_.seqs);
      } else {
        ++gen_stats_.mixed_steps;
      }
    }
    for (const TokenEvent& e : events) {
      GenerationOutput& o = out[std::size_t(e.id)];
      if (o.token_times_s.empty()) o.ttft_s = t - joined[std::size_t(e.id)];
      o.token_times_s.push_back(t);
    }
    for (FinishedRequest& f : sched_.take_finished()) {
      GenerationOutput& o = out[std::size_t(f.id)];
      o.tokens.assign(f.output.begin(), f.output.end());
      o.finish_reason = output_reason(f.reason);
      o.num_cached_tokens = f.num_cached_tokens;
      o.num_preemptions = f.num_preemptions;
      --remaining;
    }
  }
  double last_first = 0;
  for (const auto& o : out)
    if (!o.token_times_s.empty()) last_first = std::max(last_first, o.token_times_s.front());
  gen_stats_.prefill_s = last_first;
  gen_stats_.graphs_captured = graphs_captured_;
  gen_stats_.preemptions = sched_.stats().num_preemptions - preempted0;
  return out;
}

}  // namespace aipe::llm
