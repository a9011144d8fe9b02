#include "aipe/llm/scheduler.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace aipe::llm {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::none: return "none";
    case FinishReason::eos: return "eos";
    case FinishReason::stop_token: return "stop_token";
    case FinishReason::max_tokens: return "max_tokens";
    case FinishReason::context_limit: return "context_limit";
    case FinishReason::cancelled: return "cancelled";
  }
  return "?";
}

namespace {

std::string s(std::int64_t v) { return std::to_string(v); }

void check_ids(const char* what, RequestId id, const std::vector<TokenId>& ids, std::int32_t vocab) {
  for (std::size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || (vocab > 0 && ids[i] >= vocab))
      throw std::invalid_argument("request " + s(id) + ": " + what + "[" + s(std::int64_t(i)) + "] = " + s(ids[i]) +
                                  (vocab > 0 ? " is outside the vocabulary [0, " + s(vocab) + ")" : " is negative"));
}

}  // namespace

FlatBatch flatten(const StepPlan& plan, std::int32_t width) {
  std::int32_t longest = 0;
  for (const auto& q : plan.seqs) longest = std::max(longest, static_cast<std::int32_t>(q.block_table.size()));
  if (width == 0) width = longest;
  if (width < longest)
    throw std::invalid_argument("flatten: block-table width " + s(width) + " < the longest row of the step (" +
                                s(longest) + " pages)");
  FlatBatch f;
  f.width = width;
  f.query_start.push_back(0);
  f.block_tables.assign(plan.seqs.size() * std::size_t(width), -1);
  for (std::size_t b = 0; b < plan.seqs.size(); ++b) {
    const auto& q = plan.seqs[b];
    f.tokens.insert(f.tokens.end(), q.tokens.begin(), q.tokens.end());
    f.positions.insert(f.positions.end(), q.positions.begin(), q.positions.end());
    f.slots.insert(f.slots.end(), q.slots.begin(), q.slots.end());
    f.query_start.push_back(static_cast<std::int32_t>(f.tokens.size()));
    f.seq_lens.push_back(q.end);
    std::copy(q.block_table.begin(), q.block_table.end(), f.block_tables.begin() + std::ptrdiff_t(b * std::size_t(width)));
    if (q.sample) f.sample_rows.push_back(static_cast<std::int32_t>(f.tokens.size()) - 1);
  }
  return f;
}

Scheduler::Scheduler(const SchedulerConfig& cfg, const BlockManagerConfig& kv) : cfg_(cfg), kv_(kv) {
  if (cfg.max_num_batched_tokens < 1)
    throw std::invalid_argument("Scheduler: max_num_batched_tokens must be >= 1 (got " + s(cfg.max_num_batched_tokens) + ")");
  if (cfg.max_num_seqs < 1)
    throw std::invalid_argument("Scheduler: max_num_seqs must be >= 1 (got " + s(cfg.max_num_seqs) + ")");
  if (cfg.max_model_len < 1)
    throw std::invalid_argument("Scheduler: max_model_len must be >= 1 (got " + s(cfg.max_model_len) + ")");
  if (cfg.vocab_size < 0) throw std::invalid_argument("Scheduler: vocab_size must be >= 0 (got " + s(cfg.vocab_size) + ")");
  if (cfg.vocab_size > 0 && cfg.eos_id >= cfg.vocab_size)
    throw std::invalid_argument("Scheduler: eos_id " + s(cfg.eos_id) + " is outside the vocabulary [0, " +
                                s(cfg.vocab_size) + ")");
  // Decodes go first, one token each: with fewer tokens than sequences, the newest running ones would never run.
  if (cfg.max_num_batched_tokens < cfg.max_num_seqs)
    throw std::invalid_argument("Scheduler: max_num_batched_tokens (" + s(cfg.max_num_batched_tokens) +
                                ") must be >= max_num_seqs (" + s(cfg.max_num_seqs) + ")");
  if (!cfg.enable_chunked_prefill && cfg.max_num_batched_tokens < cfg.max_model_len)
    throw std::invalid_argument("Scheduler: without chunked prefill, max_num_batched_tokens (" +
                                s(cfg.max_num_batched_tokens) + ") must be >= max_model_len (" + s(cfg.max_model_len) +
                                ") so that any prompt fits one step");
  // A request alone must always be admissible, or preempting it would leave it waiting forever.
  const std::int32_t need = BlockManager::pages_for(cfg.max_model_len, kv_.page_size());
  if (need > kv_.num_pages() - kv_.watermark_pages())
    throw std::invalid_argument("Scheduler: a max_model_len (" + s(cfg.max_model_len) + ") sequence needs " + s(need) +
                                " pages but the KV cache has " + s(kv_.num_pages()) + " with " +
                                s(kv_.watermark_pages()) + " kept free by the watermark");
}

Scheduler::State& Scheduler::state(RequestId id) {
  const auto it = reqs_.find(id);
  if (it == reqs_.end()) throw std::logic_error("Scheduler: request " + s(id) + " has no state");
  return it->second;
}

std::int32_t Scheduler::num_computed(RequestId id) const {
  const auto it = reqs_.find(id);
  if (it == reqs_.end()) throw std::invalid_argument("Scheduler::num_computed: no unfinished request " + s(id));
  return it->second.num_computed;
}

void Scheduler::add_request(Request r) {
  if (reqs_.count(r.id)) throw std::invalid_argument("request " + s(r.id) + ": the id is already in use");
  if (r.prompt.empty()) throw std::invalid_argument("request " + s(r.id) + ": the prompt is empty");
  if (r.prompt.size() > std::size_t(cfg_.max_model_len))
    throw std::invalid_argument("request " + s(r.id) + ": the prompt has " + s(std::int64_t(r.prompt.size())) +
                                " tokens, more than max_model_len " + s(cfg_.max_model_len));
  check_ids("prompt", r.id, r.prompt, cfg_.vocab_size);
  check_ids("stop_ids", r.id, r.stop_ids, cfg_.vocab_size);
  if (r.max_tokens < 1)
    throw std::invalid_argument("request " + s(r.id) + ": max_tokens must be >= 1 (got " + s(r.max_tokens) + ")");
  const auto& sp = r.sampling;
  if (!(std::isfinite(sp.temperature) && sp.temperature >= 0))
    throw std::invalid_argument("request " + s(r.id) + ": temperature must be finite and >= 0 (got " +
                                std::to_string(sp.temperature) + ")");
  if (!(sp.top_p > 0 && sp.top_p <= 1))
    throw std::invalid_argument("request " + s(r.id) + ": top_p must be in (0, 1] (got " + std::to_string(sp.top_p) + ")");
  if (sp.top_k < 0) throw std::invalid_argument("request " + s(r.id) + ": top_k must be >= 0 (got " + s(sp.top_k) + ")");
  if (!std::isfinite(r.arrival_time))
    throw std::invalid_argument("request " + s(r.id) + ": arrival_time must be finite");
  State st;
  st.tokens = r.prompt;
  st.rec.id = r.id;
  st.rec.num_prompt_tokens = static_cast<std::int32_t>(r.prompt.size());
  st.rec.times.arrival = r.arrival_time;
  st.req = std::move(r);
  const RequestId id = st.req.id;
  reqs_.emplace(id, std::move(st));
  waiting_.push_back(id);
}

bool Scheduler::cancel(RequestId id) {
  const auto it = reqs_.find(id);
  if (it == reqs_.end() || it->second.cancel_pending) return false;
  it->second.cancel_pending = true;
  cancels_.push_back(id);
  return true;
}

void Scheduler::finish(RequestId id, FinishReason why, double now) {
  State& st = state(id);
  if (kv_.holds(id)) kv_.free(id);
  const auto r = std::find(running_.begin(), running_.end(), id);
  if (r != running_.end()) running_.erase(r);
  const auto w = std::find(waiting_.begin(), waiting_.end(), id);
  if (w != waiting_.end()) waiting_.erase(w);
  st.rec.reason = why;
  st.rec.times.finished = now;
  st.rec.output.assign(st.tokens.begin() + std::ptrdiff_t(st.req.prompt.size()), st.tokens.end());
  finished_.push_back(std::move(st.rec));
  reqs_.erase(id);
  // A pending cancellation dies with the request: the id may be reused by a later request.
  cancels_.erase(std::remove(cancels_.begin(), cancels_.end(), id), cancels_.end());
  if (why == FinishReason::cancelled) ++num_cancelled_;
  else ++num_finished_;
}

// Takes the newest running request's pages back; it goes to the front of the waiting queue with nothing computed.
void Scheduler::preempt_newest(std::int32_t& budget, std::vector<RequestId>& order, StepPlan& plan) {
  const RequestId victim = running_.back();
  State& v = state(victim);
  if (v.scheduled > 0) {  // already picked for this step: give its tokens back
    budget += v.scheduled;
    order.erase(std::find(order.begin(), order.end(), victim));
  }
  kv_.free(victim);
  v.scheduled = 0;
  v.slots.clear();
  v.num_computed = 0;
  ++v.rec.num_preemptions;
  ++preemptions_;
  running_.pop_back();
  waiting_.push_front(victim);
  plan.preempted.push_back(victim);
}

// Picks the next tokens of a running request, preempting newer requests (or this one) when pages run out.
// Returns false when this request itself was preempted.
bool Scheduler::schedule_running(RequestId id, std::int32_t& budget, std::vector<RequestId>& order, StepPlan& plan) {
  State& st = state(id);
  const std::int32_t n = std::min(static_cast<std::int32_t>(st.tokens.size()) - st.num_computed, budget);
  if (n <= 0) return true;
  while (true) {
    if (auto slots = kv_.append_slots(id, n)) {
      st.scheduled = n;
      st.slots = std::move(*slots);
      budget -= n;
      order.push_back(id);
      return true;
    }
    const bool self = running_.back() == id;
    preempt_newest(budget, order, plan);
    if (self) return false;
  }
}

StepPlan Scheduler::schedule(double now) {
  if (plan_outstanding_)
    throw std::invalid_argument("Scheduler::schedule: step " + s(std::int64_t(steps_)) +
                                " has not been update()d yet (its tokens must come back first)");
  StepPlan plan;
  plan.step = ++steps_;
  std::vector<RequestId> cancels;
  cancels.swap(cancels_);  // finish() edits cancels_
  for (RequestId id : cancels)
    if (reqs_.count(id)) {
      finish(id, FinishReason::cancelled, now);
      plan.cancelled.push_back(id);
    }

  std::int32_t budget = cfg_.max_num_batched_tokens;
  std::vector<RequestId> order;  // picked requests, in plan order
  const auto remaining = [&](RequestId id) {
    const State& st = state(id);
    return static_cast<std::int32_t>(st.tokens.size()) - st.num_computed;
  };
  // 1. decodes, 2. continuing prefills; both in admission order. Preemption only removes from the back of
  // running_, so the index walk stays valid.
  for (int pass = 0; pass < 2; ++pass)
    for (std::size_t i = 0; i < running_.size() && budget > 0; ++i) {
      const RequestId id = running_[i];
      if (state(id).scheduled > 0) continue;
      const bool decode = remaining(id) == 1;
      if ((pass == 0) != decode) continue;
      schedule_running(id, budget, order, plan);
    }
  // 3. admissions, FIFO: the head of the queue blocks the ones behind it.
  while (plan.preempted.empty() && !waiting_.empty() && budget > 0 &&
         running_.size() < std::size_t(cfg_.max_num_seqs)) {
    const RequestId id = waiting_.front();
    State& st = state(id);
    const PrefixHit hit = kv_.find_cached_prefix(st.tokens);
    std::int32_t n = static_cast<std::int32_t>(st.tokens.size()) - hit.num_tokens;
    if (cfg_.enable_chunked_prefill) n = std::min(n, budget);
    else if (n > budget) break;
    auto slots = kv_.admit(id, hit, n, static_cast<std::int32_t>(st.tokens.size()));
    if (!slots) break;
    waiting_.pop_front();
    running_.push_back(id);
    st.num_computed = hit.num_tokens;
    st.scheduled = n;
    st.slots = std::move(*slots);
    if (!st.admitted_once) {
      st.admitted_once = true;
      st.rec.num_cached_tokens = hit.num_tokens;
      st.rec.times.first_scheduled = now;
    }
    budget -= n;
    order.push_back(id);
  }

  inflight_.clear();
  for (RequestId id : order) {
    State& st = state(id);
    ScheduledSeq q;
    q.id = id;
    q.begin = st.num_computed;
    q.end = st.num_computed + st.scheduled;
    q.tokens.assign(st.tokens.begin() + q.begin, st.tokens.begin() + q.end);
    q.positions.resize(std::size_t(st.scheduled));
    for (std::int32_t i = 0; i < st.scheduled; ++i) q.positions[std::size_t(i)] = q.begin + i;
    q.slots = std::move(st.slots);
    const auto row = kv_.block_table(id);
    q.block_table.assign(row.begin(), row.end());
    q.sample = q.end == static_cast<std::int32_t>(st.tokens.size());
    q.num_output_tokens = static_cast<std::int32_t>(st.tokens.size() - st.req.prompt.size());
    q.sampling = st.req.sampling;
    plan.num_tokens += st.scheduled;
    st.scheduled = 0;
    st.slots.clear();
    inflight_.push_back({id, q.end, q.sample});
    plan.seqs.push_back(std::move(q));
  }
  plan_outstanding_ = true;
  return plan;
}

std::vector<TokenEvent> Scheduler::update(const StepPlan& plan, std::span<const TokenId> sampled, double now) {
  if (!plan_outstanding_ || plan.step != steps_)
    throw std::invalid_argument("Scheduler::update: step " + s(std::int64_t(plan.step)) +
                                " is not the outstanding step (" +
                                (plan_outstanding_ ? s(std::int64_t(steps_)) : std::string("none")) + ")");
  std::size_t want = 0;
  for (const auto& f : inflight_) want += f.sample ? 1 : 0;
  if (sampled.size() != want)
    throw std::invalid_argument("Scheduler::update: step " + s(std::int64_t(plan.step)) + " samples " +
                                s(std::int64_t(want)) + " tokens but " + s(std::int64_t(sampled.size())) + " came back");
  for (std::size_t i = 0; i < sampled.size(); ++i)
    if (sampled[i] < 0 || (cfg_.vocab_size > 0 && sampled[i] >= cfg_.vocab_size))
      throw std::invalid_argument("Scheduler::update: sampled[" + s(std::int64_t(i)) + "] = " + s(sampled[i]) +
                                  " is outside the vocabulary");
  plan_outstanding_ = false;
  std::vector<TokenEvent> events;
  std::size_t k = 0;
  for (const auto& f : inflight_) {
    State& st = state(f.id);  // cancellation and preemption happen only in schedule(): still running
    st.num_computed = f.end;
    kv_.mark_computed(f.id, st.tokens, f.end);
    if (!f.sample) continue;
    const TokenId t = sampled[k++];
    st.tokens.push_back(t);
    auto& times = st.rec.times;
    if (times.first_token < 0) times.first_token = now;
    times.token_times.push_back(now);
    const auto num_out = static_cast<std::int32_t>(st.tokens.size() - st.req.prompt.size());
    FinishReason why = FinishReason::none;
    if (cfg_.eos_id >= 0 && t == cfg_.eos_id && !st.req.sampling.ignore_eos) why = FinishReason::eos;
    else if (std::find(st.req.stop_ids.begin(), st.req.stop_ids.end(), t) != st.req.stop_ids.end())
      why = FinishReason::stop_token;
    else if (num_out >= st.req.max_tokens) why = FinishReason::max_tokens;
    else if (st.tokens.size() >= std::size_t(cfg_.max_model_len)) why = FinishReason::context_limit;
    events.push_back({f.id, t, why});
    if (why != FinishReason::none) finish(f.id, why, now);
  }
  inflight_.clear();
  return events;
}

SchedulerStats Scheduler::stats() const {
  SchedulerStats st;
  st.num_running = num_running();
  st.num_waiting = num_waiting();
  st.kv_pages_total = kv_.num_pages();
  st.kv_pages_used = kv_.num_used_pages();
  st.kv_pages_cached = kv_.num_cached_pages();
  st.kv_pages_free = kv_.num_free_pages();
  st.kv_usage = kv_.usage();
  st.prefix = kv_.prefix_stats();
  st.prefix_hit_rate = st.prefix.hit_rate();
  st.num_steps = steps_;
  st.num_preemptions = preemptions_;
  st.num_finished = num_finished_;
  st.num_cancelled = num_cancelled_;
  return st;
}

std::vector<FinishedRequest> Scheduler::take_finished() {
  std::vector<FinishedRequest> out;
  out.swap(finished_);
  return out;
}

}  // namespace aipe::llm
