// The three tasks: how each model kind turns a batch of its data into logits and targets.
#include "task.h"

#include <fmt/ranges.h>

#include <spdlog/spdlog.h>

#include <algorithm>

#include "memory_estimate.h"
#include "trainer_state.h"
#include "qkv/data/masking.h"
#include "qkv/data/pair_dataset.h"
#include "qkv/data/text_dataset.h"
#include "qkv/error.h"
#include "qkv/nn/models.h"
#include "qkv/ops.h"

namespace qkv::train {

using data::Split;

void log_prepare_progress(const data::PrepareProgress& p) {
  const double mb = double(p.bytes_done) / 1e6, total = double(p.bytes_total) / 1e6;
  const double rate = p.seconds > 0 ? mb / p.seconds : 0;
  if (p.finished) {
    spdlog::info("prepared {:.1f} MB of text in {:.1f} s ({:.0f} MB/s)", total, p.seconds,
                 total / std::max(p.seconds, 1e-9));
    return;
  }
  spdlog::info("preparing the corpus: {:.0f} of {:.0f} MB ({:.0f}%), {:.0f} MB/s, about {:.0f} s "
               "left",
               mb, total, total > 0 ? 100 * mb / total : 100.0, rate,
               rate > 0 ? (total - mb) / rate : 0.0);
}

EvalResult Task::evaluate(Split split, int64_t batches, Rng& rng) {
  double loss = 0;
  int64_t hits = 0, predicted = 0;
  for (int64_t i = 0; i < batches; ++i) {
    const BatchEval b = evaluate_batch(split, rng);
    loss += b.loss;
    hits += b.hits;
    predicted += b.predicted;
  }
  return {loss / double(batches), predicted ? double(hits) / double(predicted) : 0.0};
}

Task::BatchEval Task::evaluate_batch(Split split, Rng& rng) {
  NoGradGuard no_grad;
  model().eval();
  Prediction p = predict(split, rng);
  BatchEval b{.loss = softmax_cross_entropy(p.logits, p.targets).item()};
  const Tensor best = argmax_last(p.logits);
  for (size_t r = 0; r < p.targets.size(); ++r) {
    if (p.targets[r] < 0) continue;
    ++b.predicted;
    b.hits += static_cast<int32_t>(best.data()[r]) == p.targets[r];
  }
  model().train();
  return b;
}

nn::ModelConfig model_config(const io::Config& c, int64_t vocab_size) {
  nn::ModelConfig m = c.model;
  m.vocab_size = vocab_size;
  m.seed = static_cast<uint64_t>(c.train.seed);
  m.validate();
  return m;
}

data::CorpusOptions corpus_options(const io::Config& c, bool pairs) {
  data::CorpusOptions o{.cache_dir = c.data.cache_dir, .pairs = pairs};
  o.prepare.jsonl_field = c.data.jsonl_field;
  o.prepare.progress = log_prepare_progress;
  return o;
}

namespace {

// Forward and backward FLOPs of one stack of n_layer layers over B sequences of T tokens: 6 per
// weight per token it multiplies (attention's 4C², the MLP's 2CF), plus attention's 12·C per
// query per key (all T keys, the causal half included, as nanoGPT's estimate_mfu counts them).
double stack_flops(const nn::ModelConfig& m, int64_t B, int64_t T) {
  const double C = double(m.n_embd), F = double(m.ffn()), N = double(B * T);
  return N * double(m.n_layer) * (6.0 * (4 * C * C + 2 * C * F) + 12.0 * C * double(T));
}

// The output head's: V·C weights per predicted token.
double head_flops(const nn::ModelConfig& m, int64_t tokens) {
  return 6.0 * double(m.vocab_size) * double(m.n_embd) * double(tokens);
}

// Both splits must hold one sequence of `need` characters: checked when the data is loaded,
// before a run directory is made, rather than at the first batch.
void check_splits(const data::TextDataset& d, int64_t need, std::string_view need_what) {
  for (Split split : {Split::train, Split::val})
    data::check_split_length(split, d.size(split), need, need_what);
}

// Flattens [B, T, V] logits to [B·T, V] rows for the loss.
Tensor rows(const Tensor& logits) {
  return reshape(logits, {logits.size(0) * logits.size(1), logits.size(2)});
}

class DecoderTask : public Task {
 public:
  DecoderTask(const io::Config& c, const std::optional<data::Vocab>& vocab)
      : data_(data::TextDataset::load(c.data.path, {.val_fraction = c.data.val_fraction,
                                                    .vocab = vocab,
                                                    .corpus = corpus_options(c, false)})),
        B_(c.train.batch_size),
        T_(c.model.block_size) {
    vocab_ = data_.vocab();
    fingerprint_ = data_.fingerprint();
    model_config_ = train::model_config(c, vocab_->size());
    check_training_fits(model_config_, B_);  // first: it bounds T_, so T_ + 1 cannot overflow
    check_splits(data_, T_ + 1, "block_size+1");
    model_ = std::make_unique<nn::DecoderModel>(model_config_);
  }
  nn::Module& model() override { return *model_; }
  Rng& dropout_rng() override { return model_->dropout_rng; }
  Prediction predict(Split split, Rng& rng) override {
    data::Batch b = data_.get_batch(split, B_, T_, rng);
    return {rows(model_->logits(b.inputs, B_, T_)), std::move(b.targets), B_ * T_,
            stack_flops(model_config_, B_, T_) + head_flops(model_config_, B_ * T_)};
  }

 private:
  data::TextDataset data_;
  int64_t B_, T_;
  std::unique_ptr<nn::DecoderModel> model_;
};

class EncoderTask : public Task {
 public:
  EncoderTask(const io::Config& c, const std::optional<data::Vocab>& vocab)
      : data_(data::TextDataset::load(
            c.data.path,
            {.val_fraction = c.data.val_fraction,
             .specials = {data::kMask},
             .vocab = vocab,
             .corpus = corpus_options(c, false)})),
        B_(c.train.batch_size),
        T_(c.model.block_size) {
    vocab_ = data_.vocab();
    QKV_CHECK(vocab_->has_special(data::kMask),
              "model.kind = encoder needs a vocabulary with the {} token", data::kMask);
    fingerprint_ = data_.fingerprint();
    check_splits(data_, T_, "block_size");
    model_config_ = train::model_config(c, vocab_->size());
    check_training_fits(model_config_, B_);
    model_ = std::make_unique<nn::EncoderModel>(model_config_);
  }
  nn::Module& model() override { return *model_; }
  Rng& dropout_rng() override { return model_->dropout_rng; }
  Prediction predict(Split split, Rng& rng) override {
    data::MaskedBatch b = data::get_masked_batch(data_, split, B_, T_, rng);
    return {rows(model_->logits(b.inputs, B_, T_)), std::move(b.targets), B_ * T_,
            stack_flops(model_config_, B_, T_) + head_flops(model_config_, B_ * T_)};
  }

 private:
  data::TextDataset data_;
  int64_t B_, T_;
  std::unique_ptr<nn::EncoderModel> model_;
};

class EncoderDecoderTask : public Task {
 public:
  EncoderDecoderTask(const io::Config& c, const std::optional<data::Vocab>& vocab)
      : data_(load(c, vocab)), B_(c.train.batch_size) {
    vocab_ = data_.vocab();
    fingerprint_ = data_.corpus().fingerprint();
    model_config_ = train::model_config(c, vocab_->size());
    check_training_fits(model_config_, B_);
    model_ = std::make_unique<nn::EncoderDecoderModel>(model_config_);
  }
  nn::Module& model() override { return *model_; }
  Rng& dropout_rng() override { return model_->dropout_rng; }
  // Batches are as long as their longest pair: the FLOPs count the lengths computed. The
  // cross-attention layers add q and proj (C² each) per target token, kv (2C²) per source
  // token, and 12·C per target token per source key.
  Prediction predict(Split split, Rng& rng) override {
    data::PairBatch b = data_.get_batch(split, B_, rng);
    Tensor padding = Tensor::empty({b.B, b.Ts});
    for (int64_t i = 0; i < b.B * b.Ts; ++i) padding.data()[i] = b.src_padding[i];
    const nn::ModelConfig& m = model_config_;
    const double C = double(m.n_embd), L = double(m.n_layer);
    const double cross = L * (double(b.B * b.Tt) * (6.0 * 2 * C * C + 12.0 * C * double(b.Ts)) +
                              double(b.B * b.Ts) * 6.0 * 2 * C * C);
    return {
        rows(model_->logits(b.src, b.tgt_in, b.B, b.Ts, b.Tt, padding)), std::move(b.tgt_out),
        b.B * b.Tt,
        stack_flops(m, b.B, b.Ts) + stack_flops(m, b.B, b.Tt) + cross + head_flops(m, b.B * b.Tt)};
  }

 private:
  static data::PairDataset load(const io::Config& c, const std::optional<data::Vocab>& vocab) {
    QKV_CHECK(c.data.path.size() == 1,
              "data.path: model.kind = encoder_decoder reads one TSV file, got {} paths",
              c.data.path.size());
    return data::PairDataset::load(
        c.data.path.front(),
        {.val_fraction = c.data.val_fraction,
         .block_size = c.model.block_size,
         .vocab = vocab,
         .corpus = corpus_options(c, true)});
  }
  data::PairDataset data_;
  int64_t B_;
  std::unique_ptr<nn::EncoderDecoderModel> model_;
};

}  // namespace

io::Config checkpoint_config(const io::CheckpointData& checkpoint, const std::string& dir,
                             const std::vector<std::string>& overrides) {
  const std::string config_path = dir + "/config.toml";
  io::Config config = io::parse_config(checkpoint.config_toml, config_path, overrides);
  const TrainerState state = read_trainer_state(checkpoint, dir);
  QKV_CHECK(state.model_kind == config.model.kind,
            "{}: model.kind is {}, but {}/trainer_state.json records model_kind {} for these "
            "weights; this config.toml does not belong to them",
            config_path, enum_name(config.model.kind), dir, enum_name(state.model_kind));
  return config;
}

std::unique_ptr<nn::Module> make_model(const nn::ModelConfig& mc) {
  check_model_fits(mc);
  switch (mc.kind) {
    case nn::ModelKind::decoder:
      return std::make_unique<nn::DecoderModel>(mc);
    case nn::ModelKind::encoder:
      return std::make_unique<nn::EncoderModel>(mc);
    case nn::ModelKind::encoder_decoder:
      return std::make_unique<nn::EncoderDecoderModel>(mc);
  }
  throw Error("make_model: unknown model kind");
}

void load_weights(nn::Module& model, const io::CheckpointData& checkpoint, const std::string& dir,
                  const std::string& config_source) {
  const std::vector<std::string> problems = model.state_dict_problems(checkpoint.model);
  // A different n_embd changes nearly every tensor: the first few say what is wrong.
  constexpr size_t kShown = 4;
  QKV_CHECK(problems.empty(), "{}/model.safetensors: does not match the model {} describes: {}{}",
            dir, config_source,
            fmt::join(problems.begin(), problems.begin() + std::min(problems.size(), kShown), "; "),
            problems.size() > kShown ? fmt::format(" (and {} more)", problems.size() - kShown)
                                     : std::string());
  model.load_state_dict(checkpoint.model);
}

std::unique_ptr<Task> make_task(const io::Config& config, const std::optional<data::Vocab>& vocab) {
  using enum nn::ModelKind;
  if (config.model.kind == decoder) return std::make_unique<DecoderTask>(config, vocab);
  if (config.model.kind == encoder) return std::make_unique<EncoderTask>(config, vocab);
  return std::make_unique<EncoderDecoderTask>(config, vocab);
}

}  // namespace qkv::train
