#pragma once
// Continuous-batching scheduler (iteration-level, vLLM v1 style) over the paged KV block manager.
//
// A request's sequence is its prompt followed by its output tokens; num_computed of them have K/V in the cache.
// Each step schedules, for every sequence it picks, the next tokens [num_computed, end): a decode is one token
// (the last sampled one), a prefill chunk is up to the remaining token budget. Order within a step:
//   1. running decodes (oldest admission first): inter-token latency is protected from long prefills;
//   2. running sequences in the middle of a chunked prefill;
//   3. waiting requests, strictly FIFO (the head blocks the queue): prefix-cache lookup, then a prefill chunk.
// The step holds at most max_num_batched_tokens tokens and at most max_num_seqs sequences run at once.
// When a running sequence cannot get a page, the newest running request is preempted by recomputation: its pages
// are freed, it returns to the front of the waiting queue, and later its whole sequence (prompt and the tokens
// it already produced) is prefilled again, at the same positions. No new request is admitted in a step that
// preempted. A sequence samples a token when its step reaches the end of its known tokens.
//
// Protocol: schedule(now) -> StepPlan -> the model runs it -> update(plan, sampled, now). update() marks the
// K/V written (registering full pages in the prefix cache), appends the sampled tokens and finishes requests
// (eos, stop id, max_tokens, context limit) freeing their pages. cancel() may come at any time; it takes effect
// at the start of the next schedule(). Deterministic; no threads inside; the caller serializes all calls.
#include <cstdint>
#include <deque>
#include <span>
#include <unordered_map>
#include <vector>

#include "aipe/llm/block_manager.hpp"
#include "aipe/llm/metrics.hpp"

namespace aipe::llm {

struct SamplingParams {
  float temperature = 1.0f;  // 0: greedy
  float top_p = 1.0f;        // (0, 1]
  std::int32_t top_k = 0;    // 0: off
  std::uint64_t seed = 0;
  bool ignore_eos = false;
};

struct Request {
  RequestId id = 0;  // unique among unfinished requests
  std::vector<TokenId> prompt;
  SamplingParams sampling;
  std::int32_t max_tokens = 16;
  std::vector<TokenId> stop_ids;
  double arrival_time = 0;
};

struct SchedulerConfig {
  std::int32_t max_num_batched_tokens = 2048;  // token budget of one step
  std::int32_t max_num_seqs = 128;             // sequences running at once
  std::int32_t max_model_len = 2048;           // context limit: prompt + output
  bool enable_chunked_prefill = true;          // off: a prompt is prefilled in one step or waits
  TokenId eos_id = -1;                         // the model's end-of-sequence id; < 0: none
  std::int32_t vocab_size = 0;                 // > 0: prompt, stop and sampled ids are checked against it
};

// One sequence's share of a step. Tokens [begin, end) of the sequence are computed at positions begin..end-1.
struct ScheduledSeq {
  RequestId id = 0;
  std::int32_t begin = 0, end = 0;
  std::vector<TokenId> tokens;           // [end - begin] input ids
  std::vector<std::int32_t> positions;   // [end - begin] RoPE positions (= begin + i)
  std::vector<SlotId> slots;             // [end - begin] where each token's K/V goes: page * P + offset
  std::vector<PageId> block_table;       // [ceil(end / P)] pages attention reads for this sequence
  bool sample = false;                   // the last token's logits give the next token
  std::int32_t num_output_tokens = 0;    // outputs so far (a seeded sampler's counter)
  SamplingParams sampling;
};

struct StepPlan {
  std::uint64_t step = 0;
  std::vector<ScheduledSeq> seqs;  // decodes, then continuing prefills, then new admissions
  std::int32_t num_tokens = 0;     // sum of (end - begin)
  std::vector<RequestId> preempted;  // preempted while building this step (now waiting)
  std::vector<RequestId> cancelled;  // cancellations that took effect at the start of this step
  std::int32_t num_samples() const {
    std::int32_t n = 0;
    for (const auto& s : seqs) n += s.sample ? 1 : 0;
    return n;
  }
  bool empty() const { return seqs.empty(); }
};

// The plan as the kernels consume it: flat [T] token arrays, query offsets, sequence lengths and a padded
// [B][width] block table (row-major, unused entries -1).
struct FlatBatch {
  std::vector<TokenId> tokens;
  std::vector<std::int32_t> positions;
  std::vector<SlotId> slots;
  std::vector<std::int32_t> query_start;   // [B + 1]: sequence b's tokens are [query_start[b], query_start[b+1])
  std::vector<std::int32_t> seq_lens;      // [B]: context length after this step (end)
  std::vector<PageId> block_tables;        // [B][width]
  std::int32_t width = 0;
  std::vector<std::int32_t> sample_rows;   // [S]: flat token index whose logits are sampled, in plan order
};
// width >= the longest block-table row of the plan (std::invalid_argument otherwise); 0 picks that length.
FlatBatch flatten(const StepPlan& plan, std::int32_t width = 0);

// An output token, as update() reports it.
struct TokenEvent {
  RequestId id = 0;
  TokenId token = 0;
  FinishReason finish = FinishReason::none;  // none: the request continues
};

class Scheduler {
 public:
  // Checks the configs together: budget >= max_num_seqs (every running decode fits a step); without chunked
  // prefill, budget >= max_model_len; a max_model_len sequence fits the KV cache above the watermark.
  Scheduler(const SchedulerConfig& cfg, const BlockManagerConfig& kv);

  // Queues a request (std::invalid_argument naming the problem: duplicate id, empty or too long prompt, ids out
  // of the vocabulary, max_tokens < 1, sampling parameters out of range).
  void add_request(Request r);
  // Marks a waiting or running request for cancellation at the next schedule(); false when the id is unknown
  // (never added, already finished or already cancelled).
  bool cancel(RequestId id);

  StepPlan schedule(double now);
  // `sampled` holds one id per sequence of `plan` with sample set, in plan order. The plan must be the last one
  // schedule() returned and not yet updated.
  std::vector<TokenEvent> update(const StepPlan& plan, std::span<const TokenId> sampled, double now);

  bool has_unfinished() const { return !reqs_.empty(); }
  std::int32_t num_running() const { return static_cast<std::int32_t>(running_.size()); }
  std::int32_t num_waiting() const { return static_cast<std::int32_t>(waiting_.size()); }
  const std::vector<RequestId>& running() const { return running_; }   // admission order
  const std::deque<RequestId>& waiting() const { return waiting_; }    // queue order
  std::int32_t num_computed(RequestId id) const;                       // K/V tokens in the cache
  SchedulerStats stats() const;
  // Requests that finished or were cancelled since the last call, in the order they ended.
  std::vector<FinishedRequest> take_finished();
  const BlockManager& block_manager() const { return kv_; }
  const SchedulerConfig& config() const { return cfg_; }

 private:
  struct State {
    Request req;
    std::vector<TokenId> tokens;  // prompt then outputs
    std::int32_t num_computed = 0;
    std::int32_t scheduled = 0;   // tokens picked in the step being built
    std::vector<SlotId> slots;    // their slots
    bool cancel_pending = false;
    bool admitted_once = false;
    FinishedRequest rec;          // filled as it goes
  };
  struct InFlight {
    RequestId id;
    std::int32_t end;
    bool sample;
  };

  bool schedule_running(RequestId id, std::int32_t& budget, std::vector<RequestId>& order, StepPlan& plan);
  void preempt_newest(std::int32_t& budget, std::vector<RequestId>& order, StepPlan& plan);
  void finish(RequestId id, FinishReason why, double now);
  State& state(RequestId id);

  SchedulerConfig cfg_;
  BlockManager kv_;
  std::unordered_map<RequestId, State> reqs_;
  std::deque<RequestId> waiting_;
  std::vector<RequestId> running_;
  std::vector<RequestId> cancels_;
  std::vector<FinishedRequest> finished_;
  std::vector<InFlight> inflight_;
  bool plan_outstanding_ = false;
  std::uint64_t steps_ = 0, preemptions_ = 0, num_finished_ = 0, num_cancelled_ = 0;
};

}  // namespace aipe::llm
