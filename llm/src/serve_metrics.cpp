#include "aipe/llm/serve_metrics.hpp"

#include <algorithm>
#include <sstream>

namespace aipe::llm {

Histogram::Histogram(std::vector<double> upper_bounds) : bounds(std::move(upper_bounds)), counts(bounds.size() + 1, 0) {}

void Histogram::observe(double x) {
  const auto it = std::lower_bound(bounds.begin(), bounds.end(), x);  // first bound >= x: x is in that `le` bucket
  ++counts[std::size_t(it - bounds.begin())];
  sum += x;
  ++count;
}

namespace {
// Seconds: TTFT spans queueing and prefill (ms to minutes); inter-token latency is a decode step (sub-ms to s).
const std::vector<double> kLatencyBuckets = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
                                             1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0};
const std::vector<double> kItlBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05,
                                         0.075,  0.1,   0.15,   0.2,   0.3,  0.4,   0.5,  0.75,  1.0,  2.5};

std::string num(double x) {
  std::ostringstream s;
  s.precision(17);
  s << x;
  return s.str();
}

void histogram(std::ostream& o, const std::string& name, const std::string& help, const std::string& labels,
               const Histogram& h) {
  o << "# HELP " << name << " " << help << "\n# TYPE " << name << " histogram\n";
  std::uint64_t cum = 0;
  for (std::size_t i = 0; i < h.bounds.size(); ++i) {
    cum += h.counts[i];
    o << name << "_bucket{" << labels << ",le=\"" << num(h.bounds[i]) << "\"} " << cum << "\n";
  }
  cum += h.counts.back();
  o << name << "_bucket{" << labels << ",le=\"+Inf\"} " << cum << "\n";
  o << name << "_sum{" << labels << "} " << num(h.sum) << "\n" << name << "_count{" << labels << "} " << h.count << "\n";
}

void one(std::ostream& o, const std::string& name, const char* type, const std::string& help, const std::string& labels,
         double v) {
  o << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n"
    << name << "{" << labels << "} " << num(v) << "\n";
}

// A label value: backslash, double quote and newline escaped (the text format's rule).
std::string label_value(const std::string& s) {
  std::string r;
  for (const char c : s) {
    if (c == '\\') r += "\\\\";
    else if (c == '"') r += "\\\"";
    else if (c == '\n') r += "\\n";
    else r += c;
  }
  return r;
}
}  // namespace

ServeMetrics::ServeMetrics() : ttft_(kLatencyBuckets), itl_(kItlBuckets), e2e_(kLatencyBuckets), queue_(kLatencyBuckets) {}

void ServeMetrics::record_rejected(int http_status) {
  std::lock_guard<std::mutex> l(m_);
  ++rejected_by_status_[http_status];
}

void ServeMetrics::record_finished(const FinishedRequest& f) {
  std::lock_guard<std::mutex> l(m_);
  ++finished_by_reason_[finish_reason_name(f.reason)];
  prompt_tokens_ += std::uint64_t(std::max(0, f.num_prompt_tokens));
  generation_tokens_ += f.output.size();
  if (f.times.ttft() >= 0) ttft_.observe(f.times.ttft());
  for (const double d : f.times.inter_token_latencies()) itl_.observe(d);
  if (f.times.finished >= 0) e2e_.observe(f.times.finished - f.times.arrival);
  if (f.times.queue_time() >= 0) queue_.observe(f.times.queue_time());
}

void ServeMetrics::set_engine_stats(const SchedulerStats& s) {
  std::lock_guard<std::mutex> l(m_);
  stats_ = s;
}

SchedulerStats ServeMetrics::engine_stats() const {
  std::lock_guard<std::mutex> l(m_);
  return stats_;
}

std::string ServeMetrics::render(const std::string& model_name) const {
  std::lock_guard<std::mutex> l(m_);
  const std::string lab = "model_name=\"" + label_value(model_name) + "\"";
  std::ostringstream o;
  one(o, "aipe:num_requests_running", "gauge", "Requests in the running batch.", lab, stats_.num_running);
  one(o, "aipe:num_requests_waiting", "gauge", "Requests waiting to be scheduled.", lab, stats_.num_waiting);
  one(o, "aipe:kv_cache_usage_perc", "gauge", "Fraction of the KV-cache pages in use (1 = full).", lab, stats_.kv_usage);
  one(o, "aipe:kv_cache_pages_used", "gauge", "KV-cache pages held by requests.", lab, stats_.kv_pages_used);
  one(o, "aipe:kv_cache_pages_total", "gauge", "KV-cache pages.", lab, stats_.kv_pages_total);
  one(o, "aipe:prefix_cache_hit_rate", "gauge", "Prompt tokens found in the prefix cache / prompt tokens looked up.",
      lab, stats_.prefix_hit_rate);
  one(o, "aipe:prefix_cache_queries_total", "counter", "Prompt tokens looked up in the prefix cache.", lab,
      double(stats_.prefix.queried_tokens));
  one(o, "aipe:prefix_cache_hits_total", "counter", "Prompt tokens found in the prefix cache.", lab,
      double(stats_.prefix.hit_tokens));
  one(o, "aipe:num_preemptions_total", "counter", "Requests preempted (their pages taken back, recomputed later).", lab,
      double(stats_.num_preemptions));
  one(o, "aipe:engine_steps_total", "counter", "Engine steps run.", lab, double(stats_.num_steps));
  one(o, "aipe:prompt_tokens_total", "counter", "Prompt tokens of finished requests.", lab, double(prompt_tokens_));
  one(o, "aipe:generation_tokens_total", "counter", "Tokens generated by finished requests.", lab,
      double(generation_tokens_));
  o << "# HELP aipe:request_success_total Requests that ended, by why they ended.\n"
       "# TYPE aipe:request_success_total counter\n";
  for (const char* r : {"eos", "stop_token", "max_tokens", "context_limit", "cancelled"}) {
    const auto it = finished_by_reason_.find(r);
    o << "aipe:request_success_total{" << lab << ",finished_reason=\"" << r << "\"} "
      << (it == finished_by_reason_.end() ? 0 : it->second) << "\n";
  }
  o << "# HELP aipe:request_rejected_total Requests answered with an error before they ran, by HTTP status.\n"
       "# TYPE aipe:request_rejected_total counter\n";
  std::map<int, std::uint64_t> by_status = {{400, 0}, {404, 0}, {500, 0}, {503, 0}};
  for (const auto& [st, n] : rejected_by_status_) by_status[st] = n;
  for (const auto& [st, n] : by_status) {
    o << "aipe:request_rejected_total{" << lab << ",status=\"" << st << "\"} " << n << "\n";
  }
  histogram(o, "aipe:time_to_first_token_seconds", "Time from arrival to the first output token.", lab, ttft_);
  histogram(o, "aipe:inter_token_latency_seconds", "Time between consecutive output tokens of a request.", lab, itl_);
  histogram(o, "aipe:e2e_request_latency_seconds", "Time from arrival to the end of a request.", lab, e2e_);
  histogram(o, "aipe:request_queue_time_seconds", "Time from arrival to the first scheduled step.", lab, queue_);
  return o.str();
}

}  // namespace aipe::llm
