#include "aipe/llm/generation_config.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace aipe::llm {
namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& where, const std::string& key, const std::string& what) {
  throw std::invalid_argument(where + ": " + key + ": " + what);
}

const json* find(const json& j, const char* key) {
  const auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

double number(const std::string& where, const json& j, const char* key, double dflt) {
  const json* v = find(j, key);
  if (!v) return dflt;
  if (!v->is_number()) fail(where, key, "must be a number, not " + v->dump());
  const double d = v->get<double>();
  if (!std::isfinite(d)) fail(where, key, "must be finite");
  return d;
}

std::optional<std::int64_t> integer(const std::string& where, const json& j, const char* key, std::int64_t lo,
                                    std::int64_t hi) {
  const json* v = find(j, key);
  if (!v) return std::nullopt;
  if (!v->is_number_integer()) fail(where, key, "must be an integer, not " + v->dump());
  const bool ok = v->is_number_unsigned() ? v->get<std::uint64_t>() <= static_cast<std::uint64_t>(hi) &&
                                                static_cast<std::int64_t>(v->get<std::uint64_t>()) >= lo
                                          : v->get<std::int64_t>() >= lo && v->get<std::int64_t>() <= hi;
  if (!ok) fail(where, key, v->dump() + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return v->get<std::int64_t>();
}

}  // namespace

GenerationConfig parse_generation_config(const std::string& text, const std::string& where,
                                         const ModelConfig& model) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw std::invalid_argument(where + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw std::invalid_argument(where + ": not a JSON object");
  GenerationConfig g;
  const std::int64_t vmax = model.vocab_size - 1;
  g.bos_token_id = integer(where, j, "bos_token_id", 0, vmax);
  if (!g.bos_token_id) g.bos_token_id = model.bos_token_id;
  g.pad_token_id = integer(where, j, "pad_token_id", 0, vmax);
  if (const json* e = find(j, "eos_token_id")) {
    const json list = e->is_array() ? *e : json::array({*e});
    for (std::size_t i = 0; i < list.size(); ++i) {
      const json one = json{{"eos_token_id", list[i]}};
      g.eos_token_ids.push_back(*integer(where, one, "eos_token_id", 0, vmax));
    }
  } else {
    g.eos_token_ids = model.eos_token_ids;
  }
  if (const json* d = find(j, "do_sample")) {
    if (!d->is_boolean()) fail(where, "do_sample", "must be true or false");
    g.do_sample = d->get<bool>();
  }
  g.temperature = number(where, j, "temperature", 1.0);
  if (!(g.temperature > 0)) fail(where, "temperature", std::to_string(g.temperature) + " must be > 0");
  g.top_p = number(where, j, "top_p", 1.0);
  if (!(g.top_p > 0 && g.top_p <= 1)) fail(where, "top_p", std::to_string(g.top_p) + " is not in (0, 1]");
  g.top_k = integer(where, j, "top_k", 0, model.vocab_size).value_or(50);
  g.repetition_penalty = number(where, j, "repetition_penalty", 1.0);
  if (!(g.repetition_penalty > 0))
    fail(where, "repetition_penalty", std::to_string(g.repetition_penalty) + " must be > 0");
  g.max_new_tokens = integer(where, j, "max_new_tokens", 1, std::int64_t{1} << 30);
  g.max_length = integer(where, j, "max_length", 1, std::int64_t{1} << 30);
  return g;
}

GenerationConfig load_generation_config(const std::string& model_dir, const ModelConfig& model) {
  GenerationConfig g;
  g.eos_token_ids = model.eos_token_ids;
  g.bos_token_id = model.bos_token_id;
  if (model.synthetic) return g;
  const auto p = std::filesystem::path(model_dir) / "generation_config.json";
  if (!std::filesystem::exists(p)) return g;
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::invalid_argument(p.string() + ": cannot open");
  std::ostringstream s;
  s << in.rdbuf();
  return parse_generation_config(s.str(), p.string(), model);
}

}  // namespace aipe::llm
