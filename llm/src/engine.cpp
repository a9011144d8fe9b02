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

}  // namespace

int pages_needed(const std::vector<GenerationRequest>& reqs, int page_size) {
  long long n = 0;
  for (const auto& r : reqs) n += (static_cast<long long>(r.prompt.size()) + r.max_new_tokens + page_size - 1) / page_size;
  if (n > (1ll << 30)) throw std::invalid_argument("generation: the batch needs more than 2^30 KV pages");
  return int(n);
}

Engine::Engine(LlamaModel& model, const EngineOptions& opt) : model_(model), opt_(opt) {
  const int S = model_.limits().max_seqs;
  graphs_.resize(std::size_t(S) + 1);
  d_params_ = DeviceBuffer<kernels::SamplingParams>(S);
  d_next_ = DeviceBuffer<int>(S);
  h_params_ = PinnedBuffer<kernels::SamplingParams>(S);
  h_next_ = PinnedBuffer<int>(S);
}

void Engine::decode_step(const StepBatch& b, cudaStream_t stream) {
  const int S = b.seqs();
  if (!opt_.cuda_graphs) {
    model_.step(b, stream);
    return;
  }
  model_.upload(b, stream);
  GraphExec& g = graphs_[S];
  if (!g.get()) {
    // One eager run sizes every buffer the step uses (the decode workspace); the capture that follows records
    // the same launches against the same addresses. This step's result comes from the eager run.
    model_.run_decode(S, stream);
    Graph graph = Graph::capture(stream, [&](cudaStream_t s) { model_.run_decode(S, s); });
    g = GraphExec(graph.get());
    ++stats_.graphs_captured;
    return;
  }
  AIPE_CUDA(cudaGraphLaunch(g.get(), stream));
}

std::vector<GenerationOutput> Engine::generate(const std::vector<GenerationRequest>& reqs, cudaStream_t stream) {
  const LlamaShape& m = model_.shape();
  const LlamaLimits& lim = model_.limits();
  const int P = model_.cache_shape().page_size, S = int(reqs.size());
  if (S == 0) return {};
  if (S > lim.max_seqs)
    throw std::invalid_argument("generation: " + std::to_string(S) + " requests, the model was set up for " +
                                std::to_string(lim.max_seqs));
  for (int s = 0; s < S; ++s) {
    const auto& r = reqs[s];
    const std::string who = "generation: request " + std::to_string(s) + ": ";
    if (r.prompt.empty()) throw std::invalid_argument(who + "empty prompt");
    if (r.max_new_tokens < 1) throw std::invalid_argument(who + "max_new_tokens must be >= 1");
    for (int id : r.prompt)
      if (id < 0 || id >= m.vocab)
        throw std::invalid_argument(who + "token id " + std::to_string(id) + " outside the vocabulary of " +
                                    std::to_string(m.vocab));
    const long long total = static_cast<long long>(r.prompt.size()) + r.max_new_tokens;
    if (total > std::min<long long>(m.max_positions, static_cast<long long>(lim.max_pages_per_seq) * P))
      throw std::invalid_argument(who + "prompt + max_new_tokens = " + std::to_string(total) +
                                  " tokens exceeds the context of " +
                                  std::to_string(std::min<long long>(m.max_positions, lim.max_pages_per_seq * P)));
    if (static_cast<long long>(r.prompt.size()) > lim.max_tokens)
      throw std::invalid_argument(who + "a prompt of " + std::to_string(r.prompt.size()) +
                                  " tokens exceeds the step limit of " + std::to_string(lim.max_tokens) +
                                  " (prompts are prefilled in one step)");
    kernels::check_sampling_params(r.sampling);
  }
  const int need_pages = pages_needed(reqs, P);
  if (need_pages > model_.cache_shape().num_pages)
    throw std::invalid_argument("generation: the batch needs " + std::to_string(need_pages) +
                                " KV pages, the cache has " + std::to_string(model_.cache_shape().num_pages));

  // Scattered pages: sequence s's i-th block is page i * S + s while that fits, then the rest in order.
  const int W = lim.max_pages_per_seq;
  std::vector<int> table(std::size_t(S) * W, 0);
  {
    std::vector<int> want(S);
    int maxw = 0;
    for (int s = 0; s < S; ++s) {
      want[s] = int((reqs[s].prompt.size() + reqs[s].max_new_tokens + P - 1) / P);
      maxw = std::max(maxw, want[s]);
    }
    std::vector<char> used(model_.cache_shape().num_pages, 0);
    int next_free = 0;
    for (int i = 0; i < maxw; ++i)
      for (int s = 0; s < S; ++s) {
        if (i >= want[s]) continue;
        int p = i * S + s;
        if (p >= int(used.size()) || used[p]) {
          while (used[next_free]) ++next_free;
          p = next_free;
        }
        used[p] = 1;
        table[std::size_t(s) * W + i] = p;
      }
  }
  auto slot = [&](int s, int pos) {
    return std::int64_t(table[std::size_t(s) * W + pos / P]) * P + pos % P;
  };

  std::vector<GenerationOutput> out(S);
  std::vector<int> len(S), last(S);
  std::vector<char> done(S, 0);
  const int captured = stats_.graphs_captured;
  stats_ = GenerationStats{};
  stats_.graphs_captured = captured;
  const auto t0 = Clock::now();

  auto sample_into = [&](const std::vector<int>& rows) {  // rows[i]: the request of logits row i
    const int n = int(rows.size());
    for (int i = 0; i < n; ++i) {
      h_params_.get()[i] = reqs[rows[i]].sampling;
      h_params_.get()[i].counter = out[rows[i]].tokens.size();
    }
    AIPE_CUDA(cudaMemcpyAsync(d_params_.get(), h_params_.get(), n * sizeof(kernels::SamplingParams),
                              cudaMemcpyHostToDevice, stream));
    kernels::sample(model_.logits(), m.vocab, n, m.vocab, d_params_.get(), d_next_.get(), stream);
    AIPE_CUDA(cudaMemcpyAsync(h_next_.get(), d_next_.get(), n * sizeof(int), cudaMemcpyDeviceToHost, stream));
    AIPE_CUDA(cudaStreamSynchronize(stream));
    if (model_.take_error(stream)) throw std::runtime_error("generation: a token id or position went out of range");
    const double t = since(t0);
    for (int i = 0; i < n; ++i) {
      const int s = rows[i], tok = h_next_.get()[i];
      if (tok < 0 || tok >= m.vocab) throw std::runtime_error("generation: the sampler returned token " + std::to_string(tok));
      auto& o = out[s];
      if (o.tokens.empty()) o.ttft_s = t;
      o.tokens.push_back(tok);
      o.token_times_s.push_back(t);
      last[s] = tok;
      const auto& r = reqs[s];
      if (std::find(r.stop_ids.begin(), r.stop_ids.end(), tok) != r.stop_ids.end()) {
        done[s] = 1;
        o.finish_reason = "stop";
      } else if (int(o.tokens.size()) >= r.max_new_tokens) {
        done[s] = 1;
        o.finish_reason = "length";
      }
    }
  };

  // Prefill: as many whole prompts per step as the step's token limit takes.
  for (int s0 = 0; s0 < S;) {
    StepBatch b;
    b.prefill = true;
    std::vector<int> rows;
    int s = s0;
    for (; s < S && int(b.tokens.size() + reqs[s].prompt.size()) <= lim.max_tokens; ++s) {
      const auto& pr = reqs[s].prompt;
      for (int i = 0; i < int(pr.size()); ++i) {
        b.tokens.push_back(pr[i]);
        b.positions.push_back(i);
        b.slots.push_back(slot(s, i));
      }
      b.q_lens.push_back(int(pr.size()));
      b.context_lens.push_back(int(pr.size()));
      b.block_table.insert(b.block_table.end(), table.begin() + std::size_t(s) * W, table.begin() + std::size_t(s + 1) * W);
      rows.push_back(s);
      len[s] = int(pr.size());
    }
    model_.step(b, stream);
    sample_into(rows);
    s0 = s;
  }
  stats_.prefill_s = since(t0);

  // Decode: every unfinished sequence, one token per step.
  for (;;) {
    StepBatch b;
    std::vector<int> rows;
    for (int s = 0; s < S; ++s) {
      if (done[s]) continue;
      b.tokens.push_back(last[s]);
      b.positions.push_back(len[s]);
      b.slots.push_back(slot(s, len[s]));
      b.q_lens.push_back(1);
      b.context_lens.push_back(len[s] + 1);
      b.block_table.insert(b.block_table.end(), table.begin() + std::size_t(s) * W, table.begin() + std::size_t(s + 1) * W);
      rows.push_back(s);
    }
    if (rows.empty()) break;
    const auto ts = Clock::now();
    decode_step(b, stream);
    sample_into(rows);
    stats_.decode_step_s.push_back(since(ts));
    stats_.decode_step_batch.push_back(int(rows.size()));
    for (int s : rows) ++len[s];
  }
  return out;
}

}  // namespace aipe::llm
