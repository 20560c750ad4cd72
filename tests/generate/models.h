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

io::Config tiny_config(nn::ModelKind kind);

// Every parameter redrawn from N(0, stddev²), in named_parameters() order.
void randomize(nn::Module& model, uint64_t seed, float stddev = 0.3f);

// The vocabularies the tasks would build: text for the decoder, text + <mask> for the encoder,
// the pairs' characters + <pad>, <bos>, <eos> for the encoder-decoder.
data::Vocab text_vocab();
data::Vocab mask_vocab();
data::Vocab pair_vocab();

template <class Model>
std::unique_ptr<Model> make_model(const io::Config& config, const data::Vocab& vocab,
                                  uint64_t seed) {
  auto m = std::make_unique<Model>(load::model_config(config, vocab.size()));
  randomize(*m, seed);
  return m;
}

// Saves model as RUN/checkpoint-0 and returns the run directory.
std::string save_run(const std::filesystem::path& run, const io::Config& config,
                     const data::Vocab& vocab, const nn::Module& model);

}  // namespace qkv::testing
