#include "aipe/llm/model_files.hpp"

#include <filesystem>
#include <stdexcept>

namespace aipe::llm {

void check_tokenizer_fits(const Tokenizer& t, const ModelConfig& c, const std::string& tokenizer_path) {
  // Checkpoints pad vocab_size past the tokenizer (Llama 3: 128256 rows, 128256 ids); the reverse would make the
  // embedding gather read past its table.
  if (t.id_limit() > c.vocab_size)
    throw std::invalid_argument(tokenizer_path + ": ids run to " + std::to_string(t.id_limit() - 1) + " but " +
                                c.name + " has vocab_size " + std::to_string(c.vocab_size) +
                                ": the tokenizer does not belong to this model");
}

ModelFiles open_model_files(const std::string& model, bool need_tokenizer) {
  ModelFiles m;
  m.config = load_model_config(model);
  m.generation = load_generation_config(model, m.config);
  if (m.config.synthetic) {
    if (need_tokenizer) throw std::invalid_argument(model + ": a synthetic model has no tokenizer (give token ids)");
    return m;
  }
  m.checkpoint = std::make_unique<Checkpoint>(Checkpoint::open_dir(model));
  m.plan = plan_checkpoint(m.config, *m.checkpoint);
  const std::string tp = (std::filesystem::path(model) / "tokenizer.json").string();
  if (std::filesystem::exists(tp)) {
    if (tokenizer_available() || need_tokenizer) {
      m.tokenizer = Tokenizer::load(tp);
      check_tokenizer_fits(*m.tokenizer, m.config, tp);
    }
  } else if (need_tokenizer) {
    throw std::invalid_argument(tp + ": missing (the model folder needs a tokenizer.json to take text)");
  }
  return m;
}

}  // namespace aipe::llm
