#include "targets.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <map>
#include <optional>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string_view>

#include "aipe/ceilings.hpp"
#include "aipe/comm/rendezvous.hpp"
#include "aipe/llm/safetensors.hpp"
#include "aipe/llm/scheduler.hpp"
#include "../llm/fake_kv_model.hpp"
#include "aipe/llm/config.hpp"
#include "aipe/llm/generation_config.hpp"
#include "aipe/llm/load_plan.hpp"
#include "aipe/llm/openai.hpp"
#include "aipe/llm/serve_bench.hpp"
#include <nlohmann/json.hpp>
#include "aipe/llm/safetensors.hpp"
#include "aipe/llm/tokenizer.hpp"
#include "aipe/profile/compare.hpp"
#include "aipe/profile/html_report.hpp"
#include "aipe/bench_report.hpp"
#include "aipe/report.hpp"

#ifndef AIPE_SOURCE_DIR
#define AIPE_SOURCE_DIR "."
#endif

namespace aipe::fuzz {

namespace {

[[noreturn]] void broken(const char* what) {
  std::fprintf(stderr, "fuzz: %s\n", what);
  std::abort();
}

// The results reader: a report, or std::runtime_error; what it accepts must survive a round trip.
void results_reader(std::string_view in) {
  std::istringstream is{std::string(in)};
  RunReport r;
  try {
    r = read_json(is);
  } catch (const std::runtime_error&) {
    return;
  }
  std::ostringstream os;
  write_json(os, r);
  std::istringstream back(os.str());
  try {
    const RunReport again = read_json(back);
    if (again.results.size() != r.results.size()) broken("write_json/read_json round trip changed the results");
  } catch (const std::runtime_error& e) {
    std::fprintf(stderr, "fuzz: %s\n", e.what());
    broken("read_json rejected what write_json wrote");
  }
}

void peak_cache(std::string_view in) {
  std::istringstream is{std::string(in)};
  try {
    std::string source;
    read_peak_cache(is, "fuzz.json", &source);
  } catch (const std::runtime_error&) {
  }
}

// Two reports, split at the first NUL byte (or the same input twice), through the gate.
void compare_target(std::string_view in) {
  const auto cut = in.find('\0');
  const std::string a(in.substr(0, cut)), b(cut == std::string_view::npos ? in : in.substr(cut + 1));
  RunReport ra, rb;
  try {
    std::istringstream ia(a), ib(b);
    ra = read_json(ia);
    rb = read_json(ib);
  } catch (const std::runtime_error&) {
    return;
  }
  const profile::Comparison c = profile::compare(ra, rb);
  std::ostringstream os;
  profile::write_comparison(os, c, {});
  for (char ch : os.str())
    if (ch == '\x1b') broken("compare wrote a raw escape character");
}

// The HTML page and the Markdown summary: finite in time (libFuzzer's -timeout catches a hang) and
// in size, which is bounded by a constant per result plus the text the input carries.
void report_target(std::string_view in) {
  std::istringstream is{std::string(in)};
  profile::NamedReport nr{"fuzz.json", {}};
  try {
    nr.report = read_json(is);
  } catch (const std::runtime_error&) {
    return;
  }
  std::ostringstream html, md;
  profile::write_html(html, {nr});
  profile::write_report_markdown(md, {nr}, false);
  // Per result: a table row, a marker, a bar and their escaped text (at most 4 bytes out per byte in,
  // several times over); plus the page's fixed parts.
  const std::size_t bound = 64 * 1024 + 4096 * nr.report.results.size() + 64 * in.size();
  if (html.str().size() > bound) broken("write_html output out of proportion to its input");
  if (md.str().size() > bound) broken("write_report_markdown output out of proportion to its input");
  for (char ch : md.str())
    if (ch == '\x1b') broken("the Markdown report holds a raw escape character");
}

// The bench reports (aipe bench generate / serve files, by schema or shape) through `aipe report`'s reader and both
// renderers: an error is std::runtime_error; what is read renders to bounded output with no raw escape character.
void bench_report(std::string_view in) {
  std::istringstream is{std::string(in)};
  profile::NamedReport nr;
  try {
    nr = profile::named_report("fuzz.json", read_any_report(is));
  } catch (const std::runtime_error&) {
    return;
  }
  if (!nr.generate && !nr.serve) return;  // a run report: the results_reader and report targets' ground
  const std::size_t runs = nr.generate ? nr.generate->runs.size() : nr.serve->runs.size();
  std::ostringstream html, md;
  profile::write_html(html, {nr, nr});  // twice: the side-by-side table too
  profile::write_report_markdown(md, {nr, nr}, false);
  const std::size_t bound = 64 * 1024 + 8192 * runs + 64 * in.size();
  if (html.str().size() > bound) broken("bench write_html output out of proportion to its input");
  if (md.str().size() > bound) broken("bench write_report_markdown output out of proportion to its input");
  for (char ch : md.str())
    if (ch == '\x1b') broken("the bench Markdown report holds a raw escape character");
}

// The safetensors header parser on a whole file's bytes: it accepts or throws std::runtime_error, and every
// tensor it accepts lies inside the data section with the byte size its shape and dtype need.
void safetensors_header(std::string_view in) {
  if (in.size() < 8) return;
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(in[i]);
  if (n > aipe::llm::kMaxHeaderBytes || n > in.size() - 8) return;
  const std::uint64_t data = in.size() - 8 - n;
  aipe::llm::ParsedHeader h;
  try {
    h = aipe::llm::parse_header("fuzz.safetensors", in.data() + 8, n, data);
  } catch (const std::runtime_error&) {
    return;
  }
  for (const auto& [name, t] : h.tensors) {
    if (t.begin > t.end || t.end > data) broken("an accepted tensor lies outside the data section");
    std::uint64_t e = aipe::llm::dtype_size(t.dtype);
    for (auto d : t.shape) e *= static_cast<std::uint64_t>(d);
    if (e != t.end - t.begin) broken("an accepted tensor's size does not match its shape");
  }
}

// The KV block manager and scheduler under a random op sequence read from the bytes: a config (the first 8
// bytes; a config the scheduler rejects ends the input), then ops (add a request, a malformed request, cancel,
// step, protocol misuse). Every step runs the fake model over the paged K/V, so a page shared or reused wrongly
// shows as a K/V mismatch; the block manager's invariants and the step budgets are checked each step. At the end
// every request is cancelled and the cache must hold no used page.
void kv_scheduler(std::string_view in) {
  namespace L = aipe::llm;
  if (in.size() < 8) return;
  const auto u = [&](std::size_t i) { return static_cast<unsigned>(static_cast<unsigned char>(in[i])); };
  L::BlockManagerConfig kv{.num_pages = std::int32_t(u(0) % 64) + 1,
                           .page_size = std::int32_t(u(1) % 8) + 1,
                           .watermark = double(u(2) % 4) * 0.05,
                           .enable_prefix_caching = L::prefix_caching_available() && (u(3) & 1)};
  constexpr std::int32_t kVocab = 16;  // small: prompts share prefixes often
  L::SchedulerConfig sc{.max_num_batched_tokens = std::int32_t(u(4) % 64) + 1,
                        .max_num_seqs = std::int32_t(u(5) % 8) + 1,
                        .max_model_len = std::int32_t(u(6) % 96) + 1,
                        .enable_chunked_prefill = (u(3) & 2) == 0,
                        .eos_id = (u(7) & 1) ? L::TokenId(u(7) % kVocab) : -1,
                        .vocab_size = kVocab};
  std::optional<L::Scheduler> sched;
  try {
    sched.emplace(sc, kv);
  } catch (const std::invalid_argument&) {
    return;  // a config that could stall is refused up front
  }
  aipe::test::FakeKvModel model(kv.num_pages, kv.page_size, kVocab);
  std::map<L::RequestId, std::vector<L::TokenId>> seqs;
  L::RequestId next = 1;
  double now = 0;
  const auto step = [&] {
    now += 1;
    const L::StepPlan plan = sched->schedule(now);
    if (plan.num_tokens > sc.max_num_batched_tokens) broken("a step exceeds the token budget");
    if (plan.seqs.size() > std::size_t(sc.max_num_seqs) || sched->num_running() > sc.max_num_seqs)
      broken("more sequences than max_num_seqs");
    std::vector<L::TokenId> sampled;
    try {
      sampled = model.run(plan);
    } catch (const std::logic_error& e) {
      std::fprintf(stderr, "fuzz: %s\n", e.what());
      broken("the step's slots or block tables are inconsistent");
    }
    for (const auto& e : sched->update(plan, sampled, now + 0.5))
      if (seqs.count(e.id)) seqs[e.id].push_back(e.token);
    for (const auto& f : sched->take_finished()) seqs.erase(f.id);
    try {
      sched->block_manager().check_invariants();
      for (L::RequestId id : sched->running())
        model.check_prefix(sched->block_manager().block_table(id), seqs.at(id), sched->num_computed(id), id);
    } catch (const std::logic_error& e) {
      std::fprintf(stderr, "fuzz: %s\n", e.what());
      broken("an invariant or a cached K/V page is wrong after a step");
    }
  };
  const std::size_t end = std::min<std::size_t>(in.size(), 4096);  // bounded work on the large seed files
  for (std::size_t i = 8; i < end; ++i) {
    const unsigned op = u(i) % 8;
    if (op <= 1 && i + 2 < end) {  // a request: length, then tokens from a rolling byte window
      L::Request r;
      r.id = next++;
      const std::size_t len = u(i + 1) % 48 + 1;
      for (std::size_t k = 0; k < len; ++k) r.prompt.push_back(L::TokenId(u(8 + (i + k) % (end - 8)) % 4));
      r.max_tokens = std::int32_t(u(i + 2) % 24) + 1;
      r.sampling.ignore_eos = u(i + 2) & 0x80;
      if (u(i + 1) & 0x80) r.stop_ids = {L::TokenId(u(i + 2) % kVocab)};
      i += 2;
      const bool ok = r.prompt.size() <= std::size_t(sc.max_model_len);
      const auto prompt = r.prompt;
      try {
        sched->add_request(std::move(r));
        if (!ok) broken("a prompt longer than max_model_len was accepted");
        seqs[next - 1] = prompt;
      } catch (const std::invalid_argument&) {
        if (ok) broken("a valid request was refused");
      }
    } else if (op == 2) {  // malformed requests: refused, nothing queued
      const auto waiting = sched->num_waiting();
      L::Request r;
      r.id = next;
      r.prompt = {L::TokenId(kVocab + 1)};
      try {
        sched->add_request(r);
        broken("a token outside the vocabulary was accepted");
      } catch (const std::invalid_argument&) {
      }
      r.prompt = {1};
      r.max_tokens = 0;
      try {
        sched->add_request(r);
        broken("max_tokens = 0 was accepted");
      } catch (const std::invalid_argument&) {
      }
      if (sched->num_waiting() != waiting) broken("a refused request was queued");
    } else if (op == 3 && i + 1 < end && next > 1) {  // a client disconnects
      sched->cancel(L::RequestId(u(++i)) % next);
    } else if (op == 4) {  // misuse: schedule twice, update with the wrong count; then finish the step properly
      now += 1;
      const L::StepPlan plan = sched->schedule(now);
      try {
        sched->schedule(now);
        broken("schedule() twice without update() was accepted");
      } catch (const std::invalid_argument&) {
      }
      const std::vector<L::TokenId> wrong(std::size_t(plan.num_samples()) + 1, 0);
      try {
        sched->update(plan, wrong, now);
        broken("update() with the wrong number of tokens was accepted");
      } catch (const std::invalid_argument&) {
      }
      for (const auto& e : sched->update(plan, model.run(plan), now))
        if (seqs.count(e.id)) seqs[e.id].push_back(e.token);
      for (const auto& f : sched->take_finished()) seqs.erase(f.id);
    } else {
      step();
    }
  }
  for (L::RequestId id = 1; id < next; ++id) sched->cancel(id);
  step();
  if (sched->has_unfinished()) broken("requests survive cancellation");
  const auto& bm = sched->block_manager();
  if (bm.num_used_pages() != 0 || bm.num_free_pages() + bm.num_cached_pages() != bm.num_pages())
    broken("pages leaked after every request ended");
}

// The rendezvous wire readers on what a peer could send: byte 0 picks the world size, then an 8-byte hello and a
// 4-byte reply prefix (zero-padded when short). A hello is a stranger (-1), a rank in 1..world-1, or an error;
// a blob size is at most kMaxBlobBytes or an error.
void rendezvous_message(std::string_view in) {
  std::uint8_t buf[13] = {};
  for (std::size_t i = 0; i < sizeof buf && i < in.size(); ++i) buf[i] = static_cast<std::uint8_t>(in[i]);
  const int world = static_cast<int>(buf[0]) - 8;  // -8 .. 247: worlds of 0 and below must be handled too
  std::uint8_t hello[8], size[4];
  std::copy(buf + 1, buf + 9, hello);
  std::copy(buf + 9, buf + 13, size);
  try {
    const int rank = aipe::comm::parse_hello(hello, world);
    const bool ours = hello[0] == 0x61 && hello[1] == 0x69 && hello[2] == 0x70 && hello[3] == 0x65;
    if (rank == -1 && ours) broken("parse_hello dropped a hello with aipe's magic");
    if (rank != -1 && (!ours || rank < 1 || rank >= world)) broken("parse_hello accepted a rank out of range");
  } catch (const aipe::comm::RendezvousError&) {
  }
  try {
    if (aipe::comm::parse_blob_size(size) > aipe::comm::kMaxBlobBytes) broken("parse_blob_size passed the bound");
  } catch (const aipe::comm::RendezvousError&) {
  }
}

// config.json: accepted or std::invalid_argument; an accepted config keeps the invariants the engine sizes
// buffers from (GQA divides, heads x head_dim = hidden, one expected tensor list of the right length, finite
// RoPE frequencies), and a generation_config.json of the same bytes parses against it or is refused.
void config_json(std::string_view in) {
  aipe::llm::ModelConfig c;
  try {
    c = aipe::llm::parse_model_config(std::string(in), "fuzz/config.json");
  } catch (const std::invalid_argument&) {
    return;
  }
  if (c.num_attention_heads % c.num_key_value_heads != 0) broken("accepted heads not a multiple of kv heads");
  const bool moe = c.family == aipe::llm::Family::GptOss;
  if (!moe && c.head_dim * c.num_attention_heads != c.hidden_size) broken("accepted head_dim x heads != hidden_size");
  if (c.parameter_count() <= 0) broken("accepted config with no parameters");
  if (c.yarn && c.rope_scaling) broken("accepted two RoPE scalings");
  // gpt-oss: one layer type per layer, top-k within the experts, MXFP4 blocks along both expert inputs.
  if (moe && (c.gpt_oss.sliding.size() != std::size_t(c.num_hidden_layers) ||
              c.gpt_oss.num_experts_per_tok > c.gpt_oss.num_local_experts || c.hidden_size % 32 != 0 ||
              c.intermediate_size % 32 != 0))
    broken("accepted gpt_oss config breaks its invariants");
  const std::size_t per = moe ? 19 : 9 + (c.qkv_bias ? 3 : 0) + (c.o_bias ? 1 : 0) + (c.mlp_bias ? 3 : 0);
  if (c.num_hidden_layers <= 64 &&
      aipe::llm::expected_tensors(c).size() !=
          2 + per * static_cast<std::size_t>(c.num_hidden_layers) + (c.tie_word_embeddings ? 0 : 1))
    broken("expected tensor list has the wrong length");
  try {  // a config the RoPE kernels cannot take is refused by them with a message, never used
    for (const float f : aipe::kernels::rope_frequencies(aipe::llm::rope_config(c)).inv_freq)
      if (!std::isfinite(f) || f <= 0) broken("a RoPE frequency is not finite and positive");
  } catch (const std::invalid_argument&) {
  }
  try {
    const auto g = aipe::llm::parse_generation_config(std::string(in), "fuzz/generation_config.json", c);
    if (!(g.temperature > 0) || !(g.top_p > 0 && g.top_p <= 1)) broken("accepted sampling parameters out of range");
  } catch (const std::invalid_argument&) {
  }
}

// tokenizer.json: accepted or refused with std::invalid_argument (std::runtime_error for a regex that exceeds
// its match limits); an accepted tokenizer encodes a fixed text to ids it can decode.
void tokenizer_json(std::string_view in) {
  if (!aipe::llm::tokenizer_available()) return;
  try {
    const auto t = aipe::llm::Tokenizer::from_json(std::string(in), "fuzz/tokenizer.json");
    const auto ids = t.encode("Hello, world! 1234 \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x99\x82  \n\n<|eot_id|>", true);
    for (const auto id : ids)
      if (id < 0 || id >= t.id_limit()) broken("encode produced an id outside the tokenizer");
    (void)t.decode(ids);
  } catch (const std::invalid_argument&) {
  } catch (const std::runtime_error&) {
  }
}

// The hand-made tokenizer of tests/llm/data (byte-level: every byte string encodes). On arbitrary bytes:
// decode(encode(s)) == s with and without special-token matching, and the streaming decoder's output, token by
// token, equals the whole decode made valid UTF-8.
const aipe::llm::Tokenizer& fuzz_tokenizer() {
  static const aipe::llm::Tokenizer t = [] {
    const std::string p = std::string(AIPE_SOURCE_DIR) + "/tests/llm/data/tiny-tokenizer.json";
    std::ifstream f(p, std::ios::binary);
    if (!f) broken("cannot read tests/llm/data/tiny-tokenizer.json (AIPE_SOURCE_DIR)");
    std::ostringstream s;
    s << f.rdbuf();
    return aipe::llm::Tokenizer::from_json(s.str(), p);
  }();
  return t;
}

void tokenizer_encode(std::string_view in) {
  if (!aipe::llm::tokenizer_available()) return;
  // Pieces are local (a regex match, then merges within it): bytes past 8 KB reach no new state, only cost time
  // (the seed corpus holds 100 KB results files).
  in = in.substr(0, 8192);
  const auto& t = fuzz_tokenizer();
  for (const bool split : {false, true}) {
    const auto ids = t.encode(in, false, split);
    if (t.decode(ids) != in) broken("decode(encode(s)) != s");
    if (ids.size() > in.size()) broken("more tokens than bytes");
  }
  const auto ids = t.encode(in, true);
  aipe::llm::StreamDecoder d(t, false);
  std::string streamed;
  for (const auto id : ids) streamed += d.push(id);
  streamed += d.finish();
  if (streamed != aipe::llm::utf8_lossy(t.decode(ids))) broken("streamed decode differs from the whole decode");
}


// aipe serve's request parser: any body is a request or an ApiError (400) whose body is JSON; a request it
// accepts resolves against a small model to one that fits it, or to an ApiError. The SSE reader splits a stream
// the same way whatever the pieces.
void openai_request(std::string_view in) {
  namespace oa = aipe::llm::openai;
  in = in.substr(0, 1 << 16);
  for (const auto ep : {oa::Endpoint::completions, oa::Endpoint::chat}) {
    try {
      const oa::ParsedRequest p = oa::parse_request(in, ep);
      const oa::ModelLimits lim{.max_model_len = 64, .vocab_size = 100};
      try {
        const aipe::llm::Request r = oa::to_engine_request(p, nullptr, lim, 1, 0);
        if (r.prompt.empty() || r.prompt.size() >= 64 || r.max_tokens < 1 || r.prompt.size() + r.max_tokens > 64)
          broken("to_engine_request accepted a request that does not fit the context");
        for (const auto t : r.prompt)
          if (t < 0 || t >= 100) broken("to_engine_request accepted an id outside the vocabulary");
        if (!(r.sampling.temperature >= 0 && r.sampling.temperature <= 2 && r.sampling.top_p > 0 &&
              r.sampling.top_p <= 1))
          broken("to_engine_request accepted sampling parameters out of range");
      } catch (const oa::ApiError& e) {
        if (e.status != 400) broken("to_engine_request: an error other than 400");
      }
    } catch (const oa::ApiError& e) {
      if (e.status != 400) broken("parse_request: an error other than 400");
      const nlohmann::json j = nlohmann::json::parse(oa::error_body(e), nullptr, false);
      if (j.is_discarded() || !j["error"]["message"].is_string()) broken("error_body is not an OpenAI error object");
    }
  }
  oa::SseParser whole, bytes;
  const auto a = whole.push(in);
  std::vector<std::string> b;
  for (const char c : in)
    for (auto& e : bytes.push(std::string_view(&c, 1))) b.push_back(std::move(e));
  if (a != b) broken("SseParser splits differently by the piece");
}

// aipe bench serve's reader of a server's /metrics text: any input is samples or an error naming its line; every
// name read is a metric name, and the drain check can be asked of whatever was read.
void prometheus_text(std::string_view in) {
  in = in.substr(0, 1 << 16);
  try {
    const auto m = aipe::llm::parse_prometheus_text(in);
    for (const auto& [name, v] : m) {
      if (name.empty()) broken("parse_prometheus_text: an empty metric name");
      for (const char c : name)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':'))
          broken("parse_prometheus_text: a metric name with a character outside [A-Za-z0-9_:]");
    }
    (void)aipe::llm::undrained(m);
  } catch (const std::invalid_argument& e) {
    if (std::string_view(e.what()).rfind("/metrics line ", 0) != 0) broken("parse_prometheus_text: an error without its line");
  }
}
}  // namespace

const std::vector<std::string>& target_names() {
  static const std::vector<std::string> n = {"results_reader", "peak_cache", "compare", "report", "safetensors_header",
                                             "kv_scheduler", "rendezvous_message", "config_json", "tokenizer_json",
                                             "tokenizer_encode", "openai_request", "bench_report",
                                             "prometheus_text"};
  return n;
}

int run_target(const std::string& name, const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  if (name == "results_reader") results_reader(in);
  else if (name == "peak_cache") peak_cache(in);
  else if (name == "compare") compare_target(in);
  else if (name == "report") report_target(in);
  else if (name == "safetensors_header") safetensors_header(in);
  else if (name == "kv_scheduler") kv_scheduler(in);
  else if (name == "rendezvous_message") rendezvous_message(in);
  else if (name == "config_json") config_json(in);
  else if (name == "tokenizer_json") tokenizer_json(in);
  else if (name == "tokenizer_encode") tokenizer_encode(in);
  else if (name == "openai_request") openai_request(in);
  else if (name == "bench_report") bench_report(in);
  else if (name == "prometheus_text") prometheus_text(in);
  else throw std::invalid_argument("no fuzz target named '" + name + "'");
  return 0;
}

}  // namespace aipe::fuzz
