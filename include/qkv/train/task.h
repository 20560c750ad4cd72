// Task: one model kind together with its data, behind the interface the trainer, `qkv eval`
// and `qkv info` use. decoder: next-character LM on text; encoder: masked characters on text;
// encoder_decoder: source -> target pairs from a TSV.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qkv/data/prepare.h"
#include "qkv/data/split.h"
#include "qkv/data/vocab.h"
#include "qkv/io/config.h"
#include "qkv/load.h"
#include "qkv/nn/model_config.h"
#include "qkv/nn/module.h"
#include "qkv/rng.h"

namespace qkv::train {

struct EvalResult {
  double loss = 0;      // mean cross-entropy (nats per predicted character)
  double accuracy = 0;  // fraction of predicted characters that are the argmax
};

// Log lines for an evaluation long enough to wonder about: how many batches are done and about
// how long the rest takes, every few seconds; nothing for one that ends sooner.
class EvalProgress {
 public:
  EvalProgress(data::Split split, int64_t batches);
  void done(int64_t batches_done);

 private:
  data::Split split_;
  int64_t batches_;
  std::chrono::steady_clock::time_point start_, last_said_;
};

class Task {
 public:
  virtual ~Task() = default;
  virtual nn::Module& model() = 0;
  // Logits [N, V] of one random micro-batch of `split`, drawn from rng, the N targets (-1 = not
  // predicted), and what the batch computed: its N positions, and the FLOPs of its forward and
  // backward in nanoGPT's count (6 per weight per token, 12·C per query per key of attention),
  // with the batch's real lengths. Records the graph in grad mode. With a dropout stream the
  // pass trains, drawing every dropout mask from it; without one it has no dropout.
  struct Prediction {
    Tensor logits;
    std::vector<int32_t> targets;
    int64_t tokens = 0;
    double flops = 0;
  };
  virtual Prediction predict(data::Split split, Rng& rng, Rng* dropout) = 0;
  // Mean loss and accuracy over `batches` random batches of `split`: no dropout, no grad.
  EvalResult evaluate(data::Split split, int64_t batches, Rng& rng);
  // One of those batches: its mean loss and its predicted characters, and how many were right.
  struct BatchEval {
    double loss = 0;
    int64_t hits = 0, predicted = 0;
  };
  BatchEval evaluate_batch(data::Split split, Rng& rng);

  const data::Vocab& vocab() const { return *vocab_; }
  const std::string& fingerprint() const { return fingerprint_; }

 protected:
  std::optional<data::Vocab> vocab_;
  std::string fingerprint_;
  nn::ModelConfig model_config_;
};

// The log line of a corpus being prepared (data.path's raw text, or `qkv data prepare`).
void log_prepare_progress(const data::PrepareProgress& progress);

// How config's data.path is opened: raw text prepared into data.cache_dir, with progress lines.
data::CorpusOptions corpus_options(const io::Config& config, bool pairs);

// Loads the data named by config.data.path and builds the model for config.model.kind, whose
// GEMMs compute in `precision`. loaded: train that model (a checkpoint's, load.h) over its
// vocabulary instead of a new one over the corpus's own; an unknown character is then an error
// naming it and its position.
std::unique_ptr<Task> make_task(const io::Config& config,
                                std::optional<load::LoadedModel> loaded = std::nullopt,
                                Precision precision = Precision::fp32);

}  // namespace qkv::train
