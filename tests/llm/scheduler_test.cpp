// Continuous-batching scheduler: config and request validation, chunked prefill splitting, the token and
// sequence budgets, decode-first ordering, FIFO admission, preemption by recomputation and its resume at the same
// positions, stop conditions, cancellation, the step protocol, metrics; then a 10,000-step property test with
// random arrivals, finishes and cancellations driven through a fake model that reads and writes the paged K/V,
// so that any paging error shows up as a wrong output token.
#include "aipe/llm/scheduler.hpp"

#include <gtest/gtest.h>

#include "error_of.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "llm/fake_kv_model.hpp"

using aipe::llm::BlockManagerConfig;
using aipe::llm::FinishReason;
using aipe::llm::Request;
using aipe::llm::RequestId;
using aipe::llm::Scheduler;
using aipe::llm::SchedulerConfig;
using aipe::llm::StepPlan;
using aipe::llm::TokenId;
using aipe::test::FakeKvModel;

namespace {

constexpr std::int32_t kVocab = 1000;

using aipe::test::error_of;

std::vector<TokenId> prompt_of(std::size_t n, TokenId first) {
  std::vector<TokenId> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = TokenId((first + TokenId(i) * 7) % kVocab);
  return v;
}

Request req(RequestId id, std::size_t prompt_len, std::int32_t max_tokens, double t = 0) {
  Request r;
  r.id = id;
  r.prompt = prompt_of(prompt_len, TokenId(id * 31 % kVocab));
  r.max_tokens = max_tokens;
  r.arrival_time = t;
  r.sampling.ignore_eos = true;
  return r;
}

// Drives a scheduler with the fake model; checks the K/V of every running sequence after each step.
struct Harness {
  Scheduler sched;
  FakeKvModel model;
  std::map<RequestId, std::vector<TokenId>> seq;  // prompt + outputs as the events report them
  std::map<RequestId, std::vector<TokenId>> out;
  std::map<RequestId, FinishReason> reason;
  double now = 0;

  Harness(const SchedulerConfig& c, const BlockManagerConfig& kv)
      : sched(c, kv), model(kv.num_pages, kv.page_size, c.vocab_size ? c.vocab_size : kVocab) {}

  void add(Request r) {
    seq[r.id] = r.prompt;
    sched.add_request(std::move(r));
  }
  StepPlan step() {
    now += 0.01;
    StepPlan plan = sched.schedule(now);
    const auto sampled = model.run(plan);
    for (const auto& e : sched.update(plan, sampled, now + 0.005)) {
      seq[e.id].push_back(e.token);
      out[e.id].push_back(e.token);
      if (e.finish != FinishReason::none) reason[e.id] = e.finish;
    }
    for (RequestId id : sched.running())
      model.check_prefix(sched.block_manager().block_table(id), seq[id], sched.num_computed(id), id);
    sched.block_manager().check_invariants();
    return plan;
  }
  void drain(int max_steps = 100000) {
    for (int i = 0; i < max_steps && sched.has_unfinished(); ++i) step();
    ASSERT_FALSE(sched.has_unfinished()) << "requests left after " << max_steps << " steps";
  }
};

SchedulerConfig cfg(std::int32_t budget, std::int32_t max_seqs, std::int32_t max_len = 256) {
  return {.max_num_batched_tokens = budget, .max_num_seqs = max_seqs, .max_model_len = max_len, .vocab_size = kVocab};
}
BlockManagerConfig kv(std::int32_t pages, std::int32_t page = 16, bool caching = false) {
  return {.num_pages = pages, .page_size = page, .watermark = 0, .enable_prefix_caching = caching};
}

}  // namespace

TEST(Scheduler, RejectsConfigsThatCouldStallNamingTheFields) {
  EXPECT_NE(error_of([] { Scheduler(cfg(0, 1), kv(8)); }).find("max_num_batched_tokens"), std::string::npos);
  EXPECT_NE(error_of([] { Scheduler(cfg(8, 0), kv(8)); }).find("max_num_seqs"), std::string::npos);
  EXPECT_NE(error_of([] { Scheduler(cfg(8, 16), kv(64)); }).find("must be >= max_num_seqs"), std::string::npos);
  auto c = cfg(64, 4, 128);
  c.enable_chunked_prefill = false;
  EXPECT_NE(error_of([&] { Scheduler(c, kv(64)); }).find("without chunked prefill"), std::string::npos);
  // 256 tokens need 16 pages of 16; 15 pages cannot hold one full-length request.
  EXPECT_NE(error_of([] { Scheduler(cfg(64, 4, 256), kv(15)); }).find("needs 16 pages"), std::string::npos);
  EXPECT_NO_THROW(Scheduler(cfg(64, 4, 256), kv(16)));
  auto e = cfg(64, 4);
  e.eos_id = kVocab;
  EXPECT_NE(error_of([&] { Scheduler(e, kv(64)); }).find("eos_id"), std::string::npos);
}

TEST(Scheduler, RejectsBadRequestsNamingTheProblem) {
  Scheduler s(cfg(64, 4, 100), kv(64));
  s.add_request(req(1, 10, 5));
  EXPECT_NE(error_of([&] { s.add_request(req(1, 10, 5)); }).find("already in use"), std::string::npos);
  EXPECT_NE(error_of([&] { s.add_request(req(2, 0, 5)); }).find("prompt is empty"), std::string::npos);
  EXPECT_NE(error_of([&] { s.add_request(req(2, 101, 5)); }).find("more than max_model_len 100"), std::string::npos);
  EXPECT_NE(error_of([&] { s.add_request(req(2, 10, 0)); }).find("max_tokens"), std::string::npos);
  auto r = req(2, 10, 5);
  r.prompt[3] = kVocab;
  EXPECT_NE(error_of([&] { s.add_request(r); }).find("prompt[3] = 1000 is outside the vocabulary"), std::string::npos);
  r = req(2, 10, 5);
  r.stop_ids = {-1};
  EXPECT_NE(error_of([&] { s.add_request(r); }).find("stop_ids[0]"), std::string::npos);
  r = req(2, 10, 5);
  r.sampling.temperature = -1;
  EXPECT_NE(error_of([&] { s.add_request(r); }).find("temperature"), std::string::npos);
  r.sampling.temperature = 1;
  r.sampling.top_p = 0;
  EXPECT_NE(error_of([&] { s.add_request(r); }).find("top_p"), std::string::npos);
  r.sampling.top_p = 1;
  r.sampling.top_k = -2;
  EXPECT_NE(error_of([&] { s.add_request(r); }).find("top_k"), std::string::npos);
  EXPECT_EQ(s.num_waiting(), 1);  // only the first one was queued
}

TEST(Scheduler, ChunkedPrefillSplitsAPromptExactlyThenDecodes) {
  Harness h(cfg(16, 4), kv(32));
  h.add(req(1, 37, 3));
  std::vector<std::pair<std::int32_t, std::int32_t>> ranges;
  std::vector<bool> samples;
  while (h.sched.has_unfinished()) {
    const auto p = h.step();
    ASSERT_EQ(p.seqs.size(), 1u);
    ranges.emplace_back(p.seqs[0].begin, p.seqs[0].end);
    samples.push_back(p.seqs[0].sample);
    for (std::size_t i = 0; i < p.seqs[0].positions.size(); ++i)
      EXPECT_EQ(p.seqs[0].positions[i], p.seqs[0].begin + std::int32_t(i));
  }
  // 37 = 16 + 16 + 5: only the last chunk samples; then decodes at positions 37 and 38 (3 tokens out).
  const std::vector<std::pair<std::int32_t, std::int32_t>> want = {{0, 16}, {16, 32}, {32, 37}, {37, 38}, {38, 39}};
  EXPECT_EQ(ranges, want);
  EXPECT_EQ(samples, (std::vector<bool>{false, false, true, true, true}));
  EXPECT_EQ(h.reason[1], FinishReason::max_tokens);
  EXPECT_EQ(h.out[1], h.model.reference_output(prompt_of(37, 31), 3));
  EXPECT_EQ(h.sched.block_manager().num_used_pages(), 0);
}

TEST(Scheduler, WithoutChunkedPrefillAPromptRunsWholeOrWaits) {
  auto c = cfg(64, 4, 64);
  c.enable_chunked_prefill = false;
  Harness h(c, kv(32));
  h.add(req(1, 40, 4));
  h.add(req(2, 30, 4));  // 40 + 30 > 64: waits for the next step
  auto p = h.step();
  ASSERT_EQ(p.seqs.size(), 1u);
  EXPECT_EQ(p.seqs[0].end - p.seqs[0].begin, 40);
  p = h.step();
  ASSERT_EQ(p.seqs.size(), 2u);  // request 1's decode, then request 2's whole prompt
  EXPECT_EQ(p.seqs[0].id, 1);
  EXPECT_EQ(p.seqs[1].id, 2);
  EXPECT_EQ(p.seqs[1].end - p.seqs[1].begin, 30);
  h.drain();
}

TEST(Scheduler, DecodesComeFirstAndBudgetsHold) {
  Harness h(cfg(24, 3), kv(64));
  h.add(req(1, 20, 50));
  h.add(req(2, 5, 50));
  h.step();  // 1: 20 prefill, 2: 4 of 5
  auto p = h.step();
  ASSERT_GE(p.seqs.size(), 2u);
  EXPECT_EQ(p.seqs[0].id, 1);  // the decode before request 2's last prefill token
  EXPECT_EQ(p.seqs[0].end - p.seqs[0].begin, 1);
  h.add(req(3, 100, 5));
  h.add(req(4, 10, 5));  // max_num_seqs = 3: waits while 1..3 run
  for (int i = 0; i < 12; ++i) {
    p = h.step();
    EXPECT_LE(p.num_tokens, 24);
    EXPECT_LE(h.sched.num_running(), 3);
    bool seen_prefill = false;
    for (const auto& q : p.seqs) {
      const bool decode = q.end - q.begin == 1 && q.begin >= std::int32_t(h.seq[q.id].size()) - 2 && q.sample;
      if (!decode) seen_prefill = true;
      else EXPECT_FALSE(seen_prefill) << "a decode after a prefill chunk in step " << p.step;
    }
  }
  h.drain();
}

TEST(Scheduler, AdmitsInArrivalOrderAndTheHeadBlocksTheQueue) {
  // 10 pages of 4 tokens; request 1 (24 tokens: 6 pages) runs; request 2 needs 8 pages and must wait;
  // request 3 (1 page) would fit but may not overtake request 2.
  auto c = cfg(64, 8, 36);
  Harness h(c, kv(10, 4));
  h.add(req(1, 24, 8));
  h.add(req(2, 32, 2));
  h.add(req(3, 3, 2));
  auto p = h.step();
  ASSERT_EQ(p.seqs.size(), 1u);
  EXPECT_EQ(h.sched.waiting().front(), 2);
  std::vector<RequestId> admitted = {1};
  while (h.sched.has_unfinished()) {
    p = h.step();
    for (const auto& q : p.seqs)
      if (q.begin == 0) admitted.push_back(q.id);
  }
  EXPECT_EQ(admitted, (std::vector<RequestId>{1, 2, 3}));
  for (RequestId id : {1, 2, 3}) EXPECT_EQ(h.reason[id], FinishReason::max_tokens) << id;
}

TEST(Scheduler, PreemptsTheNewestAndResumesAtTheSamePositions) {
  // 8 pages of 4 tokens = 32 slots; two requests of 10-token prompts each grow to 24 tokens: they cannot both
  // hold 6 pages, so the newer one is preempted, then recomputed from position 0 when the older finishes.
  // Request 3 arrives later and waits for pages: the preempted request 2 goes back ahead of it.
  Harness h(cfg(32, 4, 32), kv(8, 4));
  h.add(req(1, 10, 14));
  h.add(req(2, 10, 14));
  std::vector<RequestId> preempted;
  std::map<RequestId, std::vector<std::int32_t>> positions;  // every position each request computed, in order
  for (int i = 0; i < 200 && h.sched.has_unfinished(); ++i) {
    if (i == 1) h.add(req(3, 10, 2));
    const auto p = h.step();
    if (i == 1) {
      EXPECT_EQ(h.sched.waiting().front(), 3);  // 2 pages free, it needs 3
    }
    for (const auto& q : p.seqs) {  // a step that preempts admits nobody, not even the victim again
      if (!p.preempted.empty()) {
        EXPECT_GT(q.begin, 0) << "request " << q.id << " admitted in step " << p.step;
      }
    }
    for (RequestId v : p.preempted) {
      preempted.push_back(v);
      EXPECT_EQ(h.sched.waiting().front(), v) << "a preempted request resumes before later arrivals";
    }
    for (const auto& q : p.seqs) positions[q.id].insert(positions[q.id].end(), q.positions.begin(), q.positions.end());
  }
  ASSERT_FALSE(h.sched.has_unfinished());
  ASSERT_FALSE(preempted.empty());
  EXPECT_EQ(preempted.front(), 2);
  // Request 1 computed 0..22 once. Request 2 computed 0..k-1, then, resumed, 0..22 again from the start.
  std::vector<std::int32_t> once(23);
  std::iota(once.begin(), once.end(), 0);
  EXPECT_EQ(positions[1], once);
  const auto& p2 = positions[2];
  ASSERT_GT(p2.size(), once.size());
  EXPECT_TRUE(std::equal(once.begin(), once.end(), p2.end() - std::ptrdiff_t(once.size())));
  // Same tokens as without memory pressure.
  for (RequestId id : {1, 2, 3}) {
    EXPECT_EQ(h.out[id], h.model.reference_output(prompt_of(10, TokenId(id * 31)), id == 3 ? 2 : 14)) << id;
    EXPECT_EQ(h.reason[id], FinishReason::max_tokens);
  }
  const auto fin = h.sched.take_finished();
  ASSERT_EQ(fin.size(), 3u);
  for (const auto& f : fin)
    EXPECT_EQ(f.num_preemptions, std::count(preempted.begin(), preempted.end(), f.id)) << f.id;
  EXPECT_EQ(h.sched.stats().num_preemptions, preempted.size());
  EXPECT_EQ(h.sched.block_manager().num_used_pages(), 0);
}

TEST(Scheduler, FinishesOnEosStopIdMaxTokensAndContextLimit) {
  FakeKvModel m(1, 1, kVocab);
  const auto p = prompt_of(12, 5);
  const auto ref = m.reference_output(p, 8);
  auto c = cfg(64, 8, 18);
  c.eos_id = ref[2];  // the third output is the model's eos
  Harness h(c, kv(64, 4));
  Request a;
  a.id = 1;
  a.prompt = p;
  a.max_tokens = 8;
  h.add(a);
  Request b = a;
  b.id = 2;
  b.sampling.ignore_eos = true;
  b.stop_ids = {ref[4]};
  h.add(b);
  Request d = a;
  d.id = 3;
  d.sampling.ignore_eos = true;
  d.max_tokens = 2;
  h.add(d);
  Request e = a;
  e.id = 4;
  e.sampling.ignore_eos = true;
  e.max_tokens = 100;  // 12 + 6 = 18 = max_model_len
  h.add(e);
  h.drain();
  EXPECT_EQ(h.reason[1], FinishReason::eos);
  EXPECT_EQ(h.out[1], std::vector<TokenId>(ref.begin(), ref.begin() + 3));
  EXPECT_EQ(h.reason[2], FinishReason::stop_token);
  EXPECT_EQ(h.out[2].size(), 5u);
  EXPECT_EQ(h.reason[3], FinishReason::max_tokens);
  EXPECT_EQ(h.out[3].size(), 2u);
  EXPECT_EQ(h.reason[4], FinishReason::context_limit);
  EXPECT_EQ(h.out[4].size(), 6u);
  EXPECT_STREQ(aipe::llm::finish_reason_name(FinishReason::context_limit), "context_limit");
}

TEST(Scheduler, CancellationFreesPagesAtTheNextStep) {
  Harness h(cfg(64, 8, 128), kv(32, 4));
  h.add(req(1, 20, 100));
  h.add(req(2, 9, 100));
  h.step();
  h.step();
  const auto used = h.sched.block_manager().num_used_pages();
  ASSERT_GT(used, 0);
  h.add(req(3, 50, 100, 1.0));
  EXPECT_TRUE(h.sched.cancel(1));
  EXPECT_FALSE(h.sched.cancel(1));   // already pending
  EXPECT_FALSE(h.sched.cancel(77));  // unknown
  EXPECT_TRUE(h.sched.cancel(3));    // still waiting
  EXPECT_EQ(h.sched.block_manager().num_used_pages(), used);  // nothing freed until the next step
  const auto p = h.step();
  EXPECT_EQ(p.cancelled, (std::vector<RequestId>{1, 3}));
  for (const auto& q : p.seqs) EXPECT_EQ(q.id, 2);
  EXPECT_EQ(h.sched.num_running(), 1);
  EXPECT_EQ(h.sched.num_waiting(), 0);
  EXPECT_EQ(h.sched.block_manager().num_used_pages(), std::int32_t(h.sched.block_manager().block_table(2).size()));
  const auto fin = h.sched.take_finished();
  ASSERT_EQ(fin.size(), 2u);
  EXPECT_EQ(fin[0].reason, FinishReason::cancelled);
  EXPECT_EQ(fin[0].output.size(), 2u);  // what it produced before the client went away
  EXPECT_EQ(fin[1].id, 3);
  EXPECT_LT(fin[1].times.first_scheduled, 0);
  EXPECT_EQ(h.sched.stats().num_cancelled, 2u);
  // The id of a finished request may be reused; a cancel of the old one does not touch the new one.
  h.add(req(1, 5, 3));
  h.drain();
  EXPECT_EQ(h.reason[1], FinishReason::max_tokens);
  EXPECT_EQ(h.sched.block_manager().num_used_pages(), 0);
}

TEST(Scheduler, StepProtocolErrorsAreClear) {
  Scheduler s(cfg(32, 4), kv(32));
  s.add_request(req(1, 8, 4));
  const auto p = s.schedule(0);
  EXPECT_NE(error_of([&] { s.schedule(0); }).find("has not been update()d"), std::string::npos);
  EXPECT_NE(error_of([&] { s.update(p, {}, 0); }).find("samples 1 tokens but 0 came back"), std::string::npos);
  const std::vector<TokenId> bad = {kVocab};
  EXPECT_NE(error_of([&] { s.update(p, bad, 0); }).find("outside the vocabulary"), std::string::npos);
  StepPlan other = p;
  other.step = 99;
  const std::vector<TokenId> ok = {3};
  EXPECT_NE(error_of([&] { s.update(other, ok, 0); }).find("not the outstanding step"), std::string::npos);
  EXPECT_NO_THROW(s.update(p, ok, 0));
  EXPECT_NE(error_of([&] { s.update(p, ok, 0); }).find("not the outstanding step"), std::string::npos);
}

TEST(Scheduler, FlattenBuildsTheKernelArrays) {
  Harness h(cfg(64, 4, 128), kv(32, 4));
  h.add(req(1, 9, 4));
  h.step();
  h.add(req(2, 6, 4));
  const auto p = h.sched.schedule(1.0);
  const auto f = aipe::llm::flatten(p, 5);
  ASSERT_EQ(p.seqs.size(), 2u);  // 1 decodes (position 9), 2 prefills 6 tokens
  EXPECT_EQ(f.tokens.size(), 7u);
  EXPECT_EQ(f.query_start, (std::vector<std::int32_t>{0, 1, 7}));
  EXPECT_EQ(f.seq_lens, (std::vector<std::int32_t>{10, 6}));
  EXPECT_EQ(f.positions[0], 9);
  EXPECT_EQ(f.positions[6], 5);
  EXPECT_EQ(f.sample_rows, (std::vector<std::int32_t>{0, 6}));
  ASSERT_EQ(f.block_tables.size(), 10u);
  EXPECT_EQ(f.block_tables[0], p.seqs[0].block_table[0]);
  EXPECT_EQ(f.block_tables[3], -1);  // request 1 holds 3 pages
  EXPECT_EQ(f.block_tables[5], p.seqs[1].block_table[0]);
  EXPECT_NE(error_of([&] { aipe::llm::flatten(p, 2); }).find("width 2"), std::string::npos);
  EXPECT_EQ(aipe::llm::flatten(p).width, 3);
}

TEST(Scheduler, MetricsReportQueuesKvUseAndLatencies) {
  Harness h(cfg(32, 4, 64), kv(16, 4));
  auto r = req(1, 10, 3, 0.0);
  h.add(r);
  h.add(req(2, 10, 3, 0.0));
  auto st = h.sched.stats();
  EXPECT_EQ(st.num_waiting, 2);
  EXPECT_EQ(st.kv_usage, 0.0);
  h.step();
  st = h.sched.stats();
  EXPECT_EQ(st.num_running, 2);
  EXPECT_EQ(st.kv_pages_used, 6);  // 3 pages of 4 for each 10-token prompt
  EXPECT_DOUBLE_EQ(st.kv_usage, 6.0 / 16.0);
  EXPECT_EQ(st.num_steps, 1u);
  h.drain();
  const auto fin = h.sched.take_finished();
  ASSERT_EQ(fin.size(), 2u);
  const auto& t = fin[0].times;
  EXPECT_NEAR(t.queue_time(), 0.01, 1e-12);  // scheduled at the first step (now = 0.01)
  EXPECT_NEAR(t.ttft(), 0.015, 1e-12);        // its tokens come back at now + 0.005
  ASSERT_EQ(t.token_times.size(), 3u);
  for (double d : t.inter_token_latencies()) EXPECT_NEAR(d, 0.01, 1e-12);
  EXPECT_NEAR(t.finished, 0.035, 1e-12);
  EXPECT_EQ(fin[0].num_prompt_tokens, 10);
  EXPECT_TRUE(h.sched.take_finished().empty());
  EXPECT_EQ(h.sched.stats().kv_usage, 0.0);
}

TEST(Scheduler, PrefixCacheSkipsSharedPagesAndKeepsOutputs) {
  if (!aipe::llm::prefix_caching_available()) GTEST_SKIP() << "built without libxxhash: no prefix caching";
  auto make = [](RequestId id) {
    Request r = req(id, 0, 4);
    r.prompt = prompt_of(40, 3);  // a shared 40-token system prompt ...
    for (TokenId t : prompt_of(5, TokenId(id))) r.prompt.push_back(t);  // ... and a private question
    return r;
  };
  std::map<RequestId, std::vector<TokenId>> outs[2];
  for (int caching = 0; caching < 2; ++caching) {
    Harness h(cfg(64, 4), kv(64, 8, caching == 1));
    h.add(make(1));
    h.drain();
    h.add(make(2));
    const auto p = h.step();
    ASSERT_EQ(p.seqs.size(), 1u);
    // With the cache, request 2 starts after the 5 full pages (40 tokens) of the shared prompt.
    EXPECT_EQ(p.seqs[0].begin, caching ? 40 : 0);
    h.drain();
    outs[caching] = h.out;
    const auto st = h.sched.stats();
    if (caching) {
      EXPECT_EQ(st.prefix.hit_tokens, 40u);
      EXPECT_NEAR(st.prefix_hit_rate, 40.0 / 90.0, 1e-12);
      EXPECT_EQ(h.sched.take_finished().back().num_cached_tokens, 40);
    }
  }
  EXPECT_EQ(outs[0], outs[1]);
}

// 10,000 steps of random arrivals (some sharing prompt stems), random stop ids and eos, and cancellations, on a KV
// cache small enough to preempt often. Every step: the budgets hold, invariants hold, every running sequence's
// K/V reads back what its prefix computes. Every finished request's output is the reference output (so outputs
// are identical with and without the prefix cache), and at the end no page is used.
namespace {

struct PropertyResult {
  std::map<RequestId, std::vector<TokenId>> outputs;  // requests that were not cancelled
  std::uint64_t preemptions = 0, cancelled = 0, hit_tokens = 0;
};

PropertyResult property_run(bool caching, std::uint32_t seed) {
  PropertyResult res;
  auto c = cfg(48, 6, 96);
  c.eos_id = 0;
  Harness h(c, {.num_pages = 40, .page_size = 4, .watermark = 0.05, .enable_prefix_caching = caching});
  std::mt19937 rng(seed);
  const std::vector<std::vector<TokenId>> stems = {prompt_of(30, 11), prompt_of(17, 500), prompt_of(45, 222)};
  std::map<RequestId, Request> reqs;
  std::set<RequestId> cancelled;
  RequestId next = 1;
  std::vector<RequestId> first_admitted;
  std::set<RequestId> seen;
  for (int step = 0; step < 10000 || h.sched.has_unfinished(); ++step) {
    if (step > 20000) {
      ADD_FAILURE() << "not drained 10,000 steps after the last arrival";
      return res;
    }
    for (int k = int(rng() % 3); k > 0 && step < 10000; --k) {  // then no more arrivals: everything drains
      if (rng() % 6) continue;
      Request r;
      r.id = next++;
      const auto& stem = stems[rng() % stems.size()];
      r.prompt.assign(stem.begin(), stem.begin() + std::ptrdiff_t(rng() % (stem.size() + 1)));
      for (int t = int(rng() % 20) + 1; t > 0; --t) r.prompt.push_back(TokenId(rng() % kVocab));
      r.max_tokens = std::int32_t(rng() % 40) + 1;
      if (rng() % 3 == 0) r.stop_ids = {TokenId(rng() % kVocab)};
      r.sampling.ignore_eos = rng() % 2;
      r.arrival_time = h.now;
      reqs[r.id] = r;
      h.add(r);
    }
    if (rng() % 20 == 0 && next > 1 && step < 10000) {  // a client disconnects: mostly a live request, sometimes one long gone
      std::vector<RequestId> live(h.sched.running().begin(), h.sched.running().end());
      live.insert(live.end(), h.sched.waiting().begin(), h.sched.waiting().end());
      const RequestId id = live.empty() || rng() % 4 == 0 ? RequestId(rng() % std::uint64_t(next - 1)) + 1
                                                         : live[rng() % live.size()];
      if (h.sched.cancel(id)) cancelled.insert(id);
    }
    const std::set<RequestId> before(h.sched.running().begin(), h.sched.running().end());
    const StepPlan p = h.step();
    if (::testing::Test::HasFatalFailure()) return res;
    if (!p.preempted.empty()) {
      for (const auto& q : p.seqs) EXPECT_TRUE(before.count(q.id)) << "admitted in a preempting step " << step;
    }
    EXPECT_LE(p.num_tokens, c.max_num_batched_tokens) << "step " << step;
    EXPECT_LE(std::int32_t(p.seqs.size()), c.max_num_seqs) << "step " << step;
    EXPECT_LE(h.sched.num_running(), c.max_num_seqs) << "step " << step;
    std::set<RequestId> ids;
    for (const auto& q : p.seqs) {
      EXPECT_TRUE(ids.insert(q.id).second) << "request twice in step " << step;
      if (seen.insert(q.id).second) first_admitted.push_back(q.id);
    }
  }
  // FIFO: requests start in arrival (= id) order; preempted ones resume ahead of later arrivals.
  EXPECT_TRUE(std::is_sorted(first_admitted.begin(), first_admitted.end()));
  EXPECT_FALSE(h.sched.has_unfinished());
  for (const auto& f : h.sched.take_finished()) {
    if (f.reason == FinishReason::cancelled) {
      ++res.cancelled;
      EXPECT_TRUE(cancelled.count(f.id)) << f.id;
      continue;
    }
    const auto& r = reqs.at(f.id);
    // The reference, cut where the request's own stop rule cuts it.
    auto ref = h.model.reference_output(r.prompt, std::size_t(r.max_tokens));
    std::size_t n = 0;
    while (n < ref.size()) {
      const TokenId t = ref[n++];
      if ((!r.sampling.ignore_eos && t == 0) || std::count(r.stop_ids.begin(), r.stop_ids.end(), t)) break;
      if (r.prompt.size() + n >= std::size_t(c.max_model_len)) break;
    }
    ref.resize(n);
    EXPECT_EQ(f.output, ref) << "request " << f.id;
    res.outputs[f.id] = f.output;
  }
  const auto st = h.sched.stats();
  EXPECT_EQ(st.kv_pages_used, 0);
  EXPECT_EQ(st.kv_pages_free + st.kv_pages_cached, 40);
  EXPECT_EQ(st.num_running + st.num_waiting, 0);
  res.preemptions = st.num_preemptions;
  res.hit_tokens = st.prefix.hit_tokens;
  return res;
}

}  // namespace

TEST(SchedulerProperty, TenThousandRandomStepsLeakNoPageAndKeepOutputs) {
  const auto r = property_run(false, 2026);
  EXPECT_GT(r.preemptions, 10u) << "the workload should exercise preemption";
  EXPECT_GT(r.cancelled, 10u);
  EXPECT_GT(r.outputs.size(), 500u);
}

TEST(SchedulerProperty, TenThousandRandomStepsWithPrefixCache) {
  if (!aipe::llm::prefix_caching_available()) GTEST_SKIP() << "built without libxxhash: no prefix caching";
  const auto r = property_run(true, 2026);
  EXPECT_GT(r.hit_tokens, 1000u);
  EXPECT_GT(r.outputs.size(), 500u);
}
