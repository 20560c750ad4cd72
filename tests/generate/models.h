// Small models for the generation tests: built from tiny.toml-like settings, their weights
// redrawn with a large spread so the distributions are peaked (a freshly initialised model's are
// nearly uniform, which would hide wrong choices), and saved as checkpoints for the CLI tests.
#pragma once

#include <memory>
#include <string>

#include "qkv/data/vocab.h"
#include "qkv/io/checkpoint.h"
#include "qkv/io/config.h"
#include "qkv/load.h"
#include "qkv/nn/models.h"
#include "qkv/rng.h"
#include "support/corpus.h"
#include "support/temp_dir.h"

namespace qkv::testing {

inline io::Config tiny_config(nn::ModelKind kind) {
  io::Config c;
  c.data.path = {"corpus.txt"};  // never read: sampling needs only the checkpoint
  c.model.kind = kind;
  c.model.n_layer = 2;
  c.model.n_head = 2;
  c.model.n_embd = 32;
  c.model.block_size = 16;
  c.model.bias = true;
  return c;
}

// Every parameter redrawn from N(0, stddev²), in named_parameters() order.
inline void randomize(nn::Module& model, uint64_t seed, float stddev = 0.3f) {
  Rng rng(seed);
  for (auto& [name, t] : model.named_parameters()) {
    float* data = t.data();
    for (int64_t i = 0; i < t.numel(); ++i) data[i] = stddev * rng.normal();
  }
}

// The vocabularies the tasks would build: text for the decoder, text + <mask> for the encoder,
// the pairs' characters + <pad>, <bos>, <eos> for the encoder-decoder.
inline data::Vocab text_vocab() { return data::Vocab::from_text(generated_corpus(50)); }
inline data::Vocab mask_vocab() {
  return data::Vocab::from_text(generated_corpus(50), {data::kMask});
}
inline data::Vocab pair_vocab() {
  return data::Vocab::from_text("abcdefgh", {data::kPad, data::kBos, data::kEos});
}

template <class Model>
std::unique_ptr<Model> make_model(const io::Config& config, const data::Vocab& vocab,
                                  uint64_t seed) {
  auto m = std::make_unique<Model>(load::model_config(config, vocab.size()));
  randomize(*m, seed);
  return m;
}

// Saves model as RUN/checkpoint-0 and returns the run directory.
inline std::string save_run(const std::filesystem::path& run, const io::Config& config,
                            const data::Vocab& vocab, const nn::Module& model) {
  io::CheckpointData d;
  d.model = model.state_dict();
  d.trainer_state = {{"iter", 0},
                     {"micro_batches", 1},
                     {"processes", 1},
                     {"best_val_loss", nullptr},
                     {"last_eval", nullptr},
                     {"model_kind", enum_name(config.model.kind)}};
  d.config_toml = io::to_toml(config);
  d.vocab = vocab.to_json();
  d.data_fingerprint = std::string(64, '0');
  io::save_checkpoint(run.string(), 0, d);
  return run.string();
}

}  // namespace qkv::testing
