// A CPU stand-in for the GPU engine behind llm/step_engine.hpp, for the server's tests: the real Scheduler (so
// admission, KV pages, cancellation and stats behave as they will on the GPU) with a "model" whose next token is
// (the last token + 1) % vocab, and a configurable time per step. Request r's output k is therefore
// (r.prompt.back() + 1 + k) % vocab. The engine thread calls it; the cancel record is read from the test thread.
#pragma once
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "aipe/llm/step_engine.hpp"

namespace aipe::test {

class FakeStepEngine : public llm::StepEngine {
 public:
  struct Options {
    int vocab = 1000;
    int max_model_len = 256;
    int max_num_seqs = 64;
    int max_batched_tokens = 1024;
    int num_pages = 2048;
    int page_size = 16;
    double step_delay_s = 0.001;
    llm::TokenId eos = -1;
  };

  explicit FakeStepEngine(const Options& o)
      : o_(o),
        cfg_{.max_num_batched_tokens = o.max_batched_tokens,
             .max_num_seqs = o.max_num_seqs,
             .max_model_len = o.max_model_len,
             .enable_chunked_prefill = true,
             .eos_id = o.eos,
             .vocab_size = o.vocab},
        sched_(cfg_, {.num_pages = o.num_pages, .page_size = o.page_size, .watermark = 0.01, .enable_prefix_caching = false}) {
    info_.name = "fake";
    info_.family = "fake";
    info_.synthetic = true;
    info_.vocab = o.vocab;
    info_.max_positions = o.max_model_len;
    info_.page_size = o.page_size;
    info_.num_pages = o.num_pages;
  }

  const llm::ModelInfo& info() const override { return info_; }
  const llm::SchedulerConfig& scheduler_config() const override { return cfg_; }
  void add_request(llm::Request r) override { sched_.add_request(std::move(r)); }
  bool cancel(llm::RequestId id) override {
    {
      std::lock_guard<std::mutex> l(m_);
      cancel_calls_.push_back(id);
    }
    return sched_.cancel(id);
  }
  std::vector<llm::TokenEvent> step(double now) override {
    if (o_.step_delay_s > 0) std::this_thread::sleep_for(std::chrono::duration<double>(o_.step_delay_s));
    const llm::StepPlan plan = sched_.schedule(now);
    std::vector<llm::TokenId> sampled;
    for (const auto& s : plan.seqs)
      if (s.sample) sampled.push_back((s.tokens.back() + 1) % o_.vocab);
    return sched_.update(plan, sampled, now);
  }
  bool has_unfinished() const override { return sched_.has_unfinished(); }
  llm::SchedulerStats stats() const override { return sched_.stats(); }
  std::vector<llm::FinishedRequest> take_finished() override { return sched_.take_finished(); }

  std::vector<llm::RequestId> cancel_calls() const {
    std::lock_guard<std::mutex> l(m_);
    return cancel_calls_;
  }

 private:
  Options o_;
  llm::SchedulerConfig cfg_;
  llm::ModelInfo info_;
  llm::Scheduler sched_;
  mutable std::mutex m_;
  std::vector<llm::RequestId> cancel_calls_;
};

}  // namespace aipe::test
