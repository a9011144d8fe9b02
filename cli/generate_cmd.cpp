// `aipe generate` (text or token ids in, tokens out, with TTFT and TPOT) and `aipe bench generate` (a batch of
// random prompts of a given length, the decode step time against its weight-streaming bound) on the llm/ engine.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

#include "aipe/bench_report.hpp"
#include "aipe/ceilings.hpp"
#include "aipe/check.hpp"
#include "aipe/kernels/launch.cuh"
#include "aipe/device.hpp"
#include "aipe/random.hpp"
#include "aipe/stats.hpp"
#include "aipe/version.hpp"
#include "aipe/buffer.hpp"
#include "aipe/llm/engine.hpp"
#include "aipe/llm/harmony.hpp"
#include "aipe/llm/loader.hpp"
#include "aipe/llm/tokenizer.hpp"
#include "app.hpp"
#include "command.hpp"
#include "serve_cmd.hpp"

namespace aipe::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct ModelArgs {
  std::string model;
  double gpu_memory = 0.9;
  int page_size = 16, max_tokens = 4096, max_seqs = 256, device = 0;
  int max_batched_tokens = 0;
  bool no_graphs = false, no_pdl = false, no_progress = false;
  std::uint64_t seed = 1;
  std::string json;
};

void add_model_options(CLI::App* c, ModelArgs& a) {
  c->add_option("--model", a.model, "a Hugging Face model folder, or synthetic:NAME (random weights of a real shape)")
      ->required();
  c->add_option("--gpu-memory", a.gpu_memory, "fraction of the free GPU memory for weights, buffers and KV cache")
      ->check(CLI::Range(0.01, 1.0));
  c->add_option("--page-size", a.page_size, "tokens per KV-cache page (16 or 64)")->check(CLI::IsMember({16, 64}));
  c->add_option("--max-step-tokens", a.max_tokens, "tokens one forward step can hold (the model's buffers)")
      ->check(CLI::Range(1, 1 << 20));
  c->add_option("--max-batched-tokens", a.max_batched_tokens,
                "token budget of a step: prefill chunks and decodes together (chunked prefill); default: --max-step-tokens")
      ->check(CLI::Range(1, 1 << 20));
  c->add_option("--device", a.device, "GPU ordinal")->check(non_negative_integer(kMaxDevice));
  c->add_flag("--no-graphs", a.no_graphs, "launch every decode step's kernels eagerly instead of replaying a CUDA graph");
  c->add_flag("--no-pdl", a.no_pdl,
              "launch the decode step's kernels without programmatic dependent launch (each waits for the last to end)");
  c->add_option("--seed", a.seed, "seed of synthetic weights and of sampling");
  c->add_flag("--no-progress", a.no_progress, "no progress lines on stderr");
  c->add_option("--json", a.json, "write the results as JSON to FILE ('-' for stdout)");
}

llm::LoadedModel load(const ModelArgs& a, int seqs, int context, std::ostream& err) {
  AIPE_CUDA(cudaSetDevice(a.device));
  kernels::set_programmatic_launch(!a.no_pdl);
  llm::LoadOptions o;
  o.gpu_memory = a.gpu_memory;
  o.page_size = a.page_size;
  o.limits.max_tokens = std::max({a.max_tokens, a.max_batched_tokens, seqs});
  o.limits.max_seqs = std::max(1, seqs);
  o.limits.max_pages_per_seq = (context + a.page_size - 1) / a.page_size;
  o.seed = a.seed;
  if (!a.no_progress)
    o.progress = [&err](const llm::LoadProgress& p) {
      if (p.tensors_done % 16 == 0 || p.tensors_done == p.tensors_total)
        err << "loading: " << (p.bytes_done >> 20) << " / " << (p.bytes_total >> 20) << " MiB, " << p.tensors_done
            << " / " << p.tensors_total << " tensors, " << std::fixed << std::setprecision(1)
            << (p.seconds > 0 ? double(p.bytes_done) / p.seconds / 1e9 : 0.0) << " GB/s\n"
            << std::flush;
    };
  Stream s;
  return llm::load_model(a.model, o, s.get());
}

// The model name and the output path: usage errors (exit 2), found before anything looks for a GPU.
void check_model_arg(const ModelArgs& a) {
  const bool synthetic = a.model.rfind("synthetic:", 0) == 0;
  if (!synthetic && !fs::is_directory(a.model))
    throw UsageError("--model " + a.model + ": no such folder (or use synthetic:NAME; names: " + [] {
      std::string n;
      for (const auto& x : llm::synthetic_names()) n += (n.empty() ? "" : ", ") + x;
      return n;
    }() + ")");
  if (synthetic) {
    try {
      llm::synthetic_config(a.model.substr(10));
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
  }
  check_output(a.json);
}

// kOk, or kNoGpu with the reason on err.
int check_gpu(std::ostream& err) {
  if (auto why = gpu_unavailable_reason()) {
    err << "aipe: " << *why << "\n";
    return kNoGpu;
  }
  return kOk;
}

json model_json(const llm::LoadedModel& m) {
  return {{"name", m.config.name}, {"synthetic", m.config.synthetic}, {"parameters", m.config.parameter_count()},
          {"weight_bytes", m.weight_bytes}, {"kv_pages", m.model->info().num_pages},
          {"page_size", m.model->info().page_size}, {"load_s", m.load_s}};
}
json meta_json() {
  const DeviceInfo d = query_device();
  return {{"aipe", version()}, {"git_revision", git_revision()}, {"timestamp", now_iso8601()},
          {"device", d.name}, {"uuid", d.uuid}, {"command", command_line()}};
}

// ---- aipe generate ----

struct GenerateArgs : ModelArgs {
  std::vector<std::string> prompts, prompt_ids;
  int max_new = 64;
  double temperature = -1, top_p = 1;
  int top_k = 0;
  bool chat = false;
};

std::vector<int> parse_ids(const std::string& s) {
  std::vector<int> ids;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    std::size_t pos = 0;
    long v = 0;
    try {
      v = std::stol(item, &pos);
    } catch (const std::exception&) {
      pos = 0;
    }
    if (pos != item.size() || item.empty() || v < 0 || v > (1l << 30))
      throw UsageError("--prompt-ids: '" + item + "' is not a token id (a comma-separated list of integers)");
    ids.push_back(int(v));
  }
  if (ids.empty()) throw UsageError("--prompt-ids: an empty list");
  return ids;
}

int cmd_generate(const GenerateArgs& a, std::ostream& out, std::ostream& err) {
  if (a.prompts.empty() == a.prompt_ids.empty())
    throw UsageError("give --prompt TEXT or --prompt-ids 1,2,3 (either may repeat: one sequence each), not both");
  std::vector<std::vector<int>> ids;
  for (const auto& p : a.prompt_ids) ids.push_back(parse_ids(p));
  check_model_arg(a);

  std::optional<llm::Tokenizer> tok;
  const bool synthetic = a.model.rfind("synthetic:", 0) == 0;
  if (!synthetic && fs::exists(fs::path(a.model) / "tokenizer.json")) tok = llm::Tokenizer::load((fs::path(a.model) / "tokenizer.json").string());
  if (!a.prompts.empty()) {
    if (!tok) throw UsageError("--prompt needs the model's tokenizer.json (" + a.model + " has none): use --prompt-ids");
    for (const auto& p : a.prompts) {
      if (a.chat && tok->token_to_id("<|start|>") && tok->token_to_id("<|message|>"))
        ids.push_back(llm::encode_harmony(*tok, llm::harmony_prompt(p)));  // gpt-oss's o200k_harmony vocabulary
      else if (a.chat)
        ids.push_back(llm::encode_llama3_chat(*tok, {{"user", p}}, true));
      else
        ids.push_back(tok->encode(p, true));
    }
  }
  if (int rc = check_gpu(err); rc != kOk) return rc;
  int context = 0;
  for (const auto& p : ids) context = std::max<int>(context, int(p.size()) + a.max_new);
  llm::LoadedModel m = load(a, int(ids.size()), context, err);
  const llm::GenerationConfig& gc = m.generation;

  std::vector<llm::GenerationRequest> reqs;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    llm::GenerationRequest r;
    r.prompt = ids[i];
    r.max_new_tokens = a.max_new;
    r.sampling.temperature = float(a.temperature >= 0 ? a.temperature : gc.effective_temperature());
    r.sampling.top_p = float(a.temperature >= 0 ? a.top_p : gc.top_p);
    r.sampling.top_k = a.temperature >= 0 ? a.top_k : int(gc.top_k);
    r.sampling.seed = a.seed + i;
    if (!synthetic)
      for (auto e : gc.eos_token_ids) r.stop_ids.push_back(int(e));
    reqs.push_back(std::move(r));
  }
  Stream s;
  llm::Engine engine(*m.model, {.cuda_graphs = !a.no_graphs, .max_batched_tokens = a.max_batched_tokens}, s.get());
  const auto outs = engine.generate(reqs);

  json j = meta_json();
  j["model"] = model_json(m);
  j["outputs"] = json::array();
  for (std::size_t i = 0; i < outs.size(); ++i) {
    const auto& o = outs[i];
    std::vector<double> itl;
    for (std::size_t t = 1; t < o.token_times_s.size(); ++t) itl.push_back(o.token_times_s[t] - o.token_times_s[t - 1]);
    std::sort(itl.begin(), itl.end());
    const double tpot = itl.empty() ? 0 : percentile_sorted(itl, 0.5);
    json oj = {{"prompt_tokens", reqs[i].prompt.size()}, {"tokens", o.tokens}, {"finish_reason", o.finish_reason},
               {"ttft_s", o.ttft_s}, {"tpot_median_s", tpot}};
    out << "[" << i << "] " << reqs[i].prompt.size() << " prompt tokens -> " << o.tokens.size() << " ("
        << o.finish_reason << "), TTFT " << std::fixed << std::setprecision(2) << o.ttft_s * 1e3 << " ms, TPOT "
        << tpot * 1e3 << " ms\n";
    if (tok) {
      const std::string text = tok->decode(o.tokens, true);
      oj["text"] = text;
      out << text << "\n";
    } else {
      out << "  ids:";
      for (int t : o.tokens) out << ' ' << t;
      out << "\n";
    }
    j["outputs"].push_back(oj);
  }
  emit(a.json, j.dump(2) + "\n", out);
  return kOk;
}

CLI::App* add_generate(CLI::App& app, Action& action) {
  auto* c = app.add_subcommand("generate", "generate tokens with the llm/ engine (Llama family, gpt-oss)");
  auto a = std::make_shared<GenerateArgs>();
  add_model_options(c, *a);
  c->add_option("--prompt", a->prompts, "prompt text (needs tokenizer.json; repeatable: one sequence each)");
  c->add_option("--prompt-ids", a->prompt_ids, "prompt as token ids, e.g. 128000,9906 (repeatable)");
  c->add_flag("--chat", a->chat, "wrap each --prompt in the chat format: harmony for a gpt-oss tokenizer, else Llama 3's");
  c->add_option("--max-tokens", a->max_new, "tokens to generate per sequence")->check(CLI::Range(1, 1 << 20));
  c->add_option("--temperature", a->temperature, "0: greedy; default: generation_config.json's")->check(CLI::Range(0.0, 100.0));
  c->add_option("--top-p", a->top_p, "nucleus sampling mass (with --temperature)")->check(CLI::Range(0.0, 1.0));
  c->add_option("--top-k", a->top_k, "top-k cut, 0: none (with --temperature)")->check(CLI::Range(0, 1 << 30));
  action = [a](std::ostream& out, std::ostream& err) { return cmd_generate(*a, out, err); };
  return c;
}
AIPE_CLI_COMMAND(70, add_generate);

// ---- aipe bench generate ----

struct BenchArgs : ModelArgs {
  std::vector<int> batches{1};
  int input_len = 512, output_len = 128;
};

int cmd_bench_generate(const BenchArgs& a, std::ostream& out, std::ostream& err) {
  check_model_arg(a);
  if (int rc = check_gpu(err); rc != kOk) return rc;
  const int max_batch = *std::max_element(a.batches.begin(), a.batches.end());
  const int context = a.input_len + a.output_len;
  llm::LoadedModel m = load(a, max_batch, context, err);
  const llm::ModelInfo& info = m.model->info();

  const DeviceInfo dev = query_device(a.device);
  double dram_gbps = derive_spec_peaks(dev).dram_gbps, bf16_tflops = derive_spec_peaks(dev).bf16_tflops;
  std::string dram_src = "spec", bf16_src = "spec";
  try {
    if (auto mp = load_measured_peaks(dev.uuid); mp) {
      if (mp->dram_gbps > 0) {
        dram_gbps = mp->dram_gbps;
        dram_src = "measured (aipe peak)";
      }
      if (mp->bf16_tflops > 0) {
        bf16_tflops = mp->bf16_tflops;
        bf16_src = "measured (aipe peak)";
      }
    }
  } catch (const std::exception&) {
  }

  json j = meta_json();
  j["schema"] = kBenchGenerateSchema;  // what `aipe report` reads it as
  j["model"] = model_json(m);
  j["input_len"] = a.input_len;
  j["output_len"] = a.output_len;
  j["cuda_graphs"] = !a.no_graphs;
  j["programmatic_launch"] = !a.no_pdl;
  j["dram_gbps"] = dram_gbps;
  j["dram_source"] = dram_src;
  j["bf16_tflops"] = bf16_tflops;
  j["bf16_source"] = bf16_src;
  j["max_batched_tokens"] = a.max_batched_tokens ? a.max_batched_tokens : std::max(a.max_tokens, max_batch);
  j["prefix_caching"] = false;
  j["runs"] = json::array();
  out << "model " << m.config.name << (m.config.synthetic ? " (synthetic weights)" : "") << ", "
      << std::fixed << std::setprecision(2) << double(m.weight_bytes) / 1e9 << " GB of weights; input " << a.input_len
      << ", output " << a.output_len << "; DRAM " << std::setprecision(0) << dram_gbps << " GB/s (" << dram_src << ")\n";
  out << " batch   TTFT ms   TPOT ms (p50 / p90 / p99)   tok/s   bound ms   % of bound\n";
  Stream s;
  // No prefix caching: the warm-up and the batch sizes share prompts, and every run must prefill in full.
  llm::Engine engine(*m.model,
                     {.cuda_graphs = !a.no_graphs, .max_batched_tokens = a.max_batched_tokens, .prefix_caching = false},
                     s.get());
  for (int B : a.batches) {
    std::vector<llm::GenerationRequest> reqs(B);
    for (int b = 0; b < B; ++b) {
      reqs[b].max_new_tokens = a.output_len;
      for (int i = 0; i < a.input_len; ++i)
        reqs[b].prompt.push_back(int(uniform_at(a.seed * 7919 + b, i, 0.f, 1.f) * float(info.vocab - 1)));
    }
    // Warm-up: the same shapes once (captures this batch size's graph, sizes the workspace, warms the clocks).
    {
      auto w = reqs;
      for (auto& r : w) r.max_new_tokens = std::min(a.output_len, 4);
      engine.generate(w);
    }
    engine.generate(reqs);
    const auto& st = engine.generation_stats();
    std::vector<double> steps = st.decode_step_s;
    std::sort(steps.begin(), steps.end());
    const double p50 = steps.empty() ? 0 : percentile_sorted(steps, 0.5);
    const double p90 = steps.empty() ? 0 : percentile_sorted(steps, 0.9);
    const double p99 = steps.empty() ? 0 : percentile_sorted(steps, 0.99);
    const double decode_total = std::accumulate(st.decode_step_s.begin(), st.decode_step_s.end(), 0.0);
    const double tok_s = decode_total > 0 ? double(B) * double(st.decode_step_s.size()) / decode_total : 0;
    // A decode step must read every weight once and the KV cache of every sequence (at the middle of the run a
    // sequence holds input + output / 2 tokens), and compute B tokens' worth of weight FLOPs: the roofline bound
    // is the larger of the two times.
    const double kv_bytes = double(B) * (a.input_len + a.output_len / 2.0) * double(info.kv_bytes_per_token);
    const double bytes = double(info.weight_bytes_per_token) + kv_bytes;
    const double bytes_s = bytes / (dram_gbps * 1e9);
    const double flops_s = bf16_tflops > 0 ? double(B) * info.flops_per_token / (bf16_tflops * 1e12) : 0.0;
    const double bound_s = std::max(bytes_s, flops_s);
    out << std::setw(6) << B << std::setw(10) << std::setprecision(2) << st.prefill_s * 1e3 << std::setw(10) << p50 * 1e3
        << " / " << std::setw(6) << p90 * 1e3 << " / " << std::setw(6) << p99 * 1e3 << std::setw(9) << std::setprecision(0)
        << tok_s << std::setw(10) << std::setprecision(3) << bound_s * 1e3 << std::setw(10) << std::setprecision(1)
        << (p50 > 0 ? 100.0 * bound_s / p50 : 0.0) << "\n";
    j["runs"].push_back({{"batch", B}, {"ttft_s", st.prefill_s}, {"tpot_s", {{"p50", p50}, {"p90", p90}, {"p99", p99}}},
                         {"decode_tokens_per_s", tok_s}, {"decode_steps", st.decode_step_s.size()},
                         {"bound_step_s", bound_s}, {"bound_bytes", bytes}, {"bound_memory_s", bytes_s},
                         {"bound_compute_s", flops_s}, {"bound", bytes_s >= flops_s ? "memory" : "compute"},
                         {"fraction_of_bound", p50 > 0 ? bound_s / p50 : 0.0}, {"graphs_captured", st.graphs_captured},
                         {"steps", st.steps}, {"mixed_steps", st.mixed_steps}, {"preemptions", st.preemptions}});
  }
  emit(a.json, j.dump(2) + "\n", out);
  return kOk;
}

CLI::App* add_bench(CLI::App& app, Action& action) {
  auto* c = app.add_subcommand("bench", "benchmarks of the engine: bench generate, bench serve");
  c->require_subcommand(1);
  auto* g = c->add_subcommand("generate", "decode throughput and latency of a batch of random prompts");
  auto a = std::make_shared<BenchArgs>();
  add_model_options(g, *a);
  g->add_option("--batch", a->batches, "batch sizes (repeatable)")->check(CLI::Range(1, 4096));
  g->add_option("--input-len", a->input_len, "prompt tokens per sequence")->check(CLI::Range(1, 1 << 20));
  g->add_option("--output-len", a->output_len, "generated tokens per sequence")->check(CLI::Range(1, 1 << 20));
  auto serve_action = std::make_shared<Action>();
  add_bench_serve(c, [serve_action](Action act) { *serve_action = std::move(act); });
  action = [a, g, serve_action](std::ostream& out, std::ostream& err) {
    return g->parsed() ? cmd_bench_generate(*a, out, err) : (*serve_action)(out, err);
  };
  return c;
}
AIPE_CLI_COMMAND(71, add_bench);

}  // namespace
}  // namespace aipe::cli
