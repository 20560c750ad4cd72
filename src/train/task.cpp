// The three tasks: how each model kind turns a batch of its data into logits and targets.
#include "qkv/train/task.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "qkv/cost.h"
#include "qkv/data/masking.h"
#include "qkv/data/pair_dataset.h"
#include "qkv/data/text_dataset.h"
#include "qkv/error.h"
#include "qkv/error_context.h"
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

EvalProgress::EvalProgress(Split split, int64_t batches)
    : split_(split), batches_(batches), start_(std::chrono::steady_clock::now()),
      last_said_(start_) {}

void EvalProgress::done(int64_t batches_done) {
  constexpr auto kEvery = std::chrono::seconds(5);
  const auto now = std::chrono::steady_clock::now();
  if (now - last_said_ < kEvery || batches_done <= 0) return;
  last_said_ = now;
  const double seconds = std::chrono::duration<double>(now - start_).count();
  spdlog::info("evaluating the {} split: {} of {} batches, about {:.0f} s left",
               data::split_name(split_), batches_done, batches_,
               seconds / double(batches_done) * double(batches_ - batches_done));
}

EvalResult Task::evaluate(Split split, int64_t batches, Rng& rng) {
  double loss = 0;
  int64_t hits = 0, predicted = 0;
  EvalProgress progress(split, batches);
  for (int64_t i = 0; i < batches; ++i) {
    const BatchEval b = evaluate_batch(split, rng);
    loss += b.loss;
    hits += b.hits;
    predicted += b.predicted;
    progress.done(i + 1);
  }
  return {loss / double(batches), predicted ? double(hits) / double(predicted) : 0.0};
}

Task::BatchEval Task::evaluate_batch(Split split, Rng& rng) {
  NoGradGuard no_grad;
  Prediction p = predict(split, rng, nullptr);
  BatchEval b{.loss = softmax_cross_entropy(p.logits, p.targets).item()};
  const Tensor best = argmax_last(p.logits);
  for (size_t r = 0; r < p.targets.size(); ++r) {
    if (p.targets[r] < 0) continue;
    ++b.predicted;
    b.hits += static_cast<int32_t>(best.data()[r]) == p.targets[r];
  }
  return b;
}

data::CorpusOptions corpus_options(const io::Config& c, bool pairs) {
  data::CorpusOptions o{.cache_dir = c.data.cache_dir, .pairs = pairs};
  o.prepare.jsonl_field = c.data.jsonl_field;
  o.prepare.progress = log_prepare_progress;
  return o;
}

namespace {

// The checkpoint's model when there is one (make_task built the config's kind), else a new one;
// either computes in the run's precision.
template <class Model>
std::unique_ptr<Model> adopt(std::unique_ptr<nn::Module> loaded, const nn::ModelConfig& mc,
                             Precision precision) {
  if (!loaded) loaded = load::make_model(mc, precision);
  auto* typed = dynamic_cast<Model*>(loaded.get());
  QKV_CHECK(typed, "make_task: the loaded model is not of model.kind {}", enum_name(mc.kind));
  loaded.release();
  typed->set_precision(precision);
  return std::unique_ptr<Model>(typed);
}

// The data a message is about: "data.path 'a.txt'", or "data.path 'a.txt' and 2 more files".
std::string data_named(const std::vector<std::string>& paths) {
  const std::string first = fmt::format("data.path '{}'", paths.empty() ? "" : paths.front());
  return paths.size() <= 1 ? first : fmt::format("{} and {} more files", first, paths.size() - 1);
}

// Flattens [B, T, V] logits to [B·T, V] rows for the loss.
Tensor rows(const Tensor& logits) {
  return reshape(logits, {logits.size(0) * logits.size(1), logits.size(2)});
}

// Windows of text: the decoder predicts each next character (a window of block_size + 1), the
// encoder the characters hidden in a window of block_size (masking.h).
template <class Model>
class TextTask : public Task {
  static constexpr bool kMasked = std::is_same_v<Model, nn::EncoderModel>;

 public:
  TextTask(const io::Config& c, const std::optional<data::Vocab>& vocab,
           std::unique_ptr<nn::Module> loaded, Precision precision)
      : data_(data::TextDataset::load(
            c.data.path,
            {.val_fraction = c.data.val_fraction,
             .specials = kMasked ? std::vector<std::string>{data::kMask}
                                 : std::vector<std::string>{},
             .vocab = vocab,
             .corpus = corpus_options(c, false)})),
        B_(c.train.batch_size),
        T_(c.model.block_size) {
    vocab_ = data_.vocab();
    QKV_CHECK(!kMasked || vocab_->has_special(data::kMask),
              "model.kind = encoder needs a vocabulary with the {} token", data::kMask);
    fingerprint_ = data_.fingerprint();
    model_config_ = load::model_config(c, vocab_->size());
    cost::check_training_fits(model_config_, B_);  // first: it bounds T_, so T_ + 1 cannot overflow
    // Both splits must hold one window: checked when the data is loaded, before a run directory
    // is made, rather than at the first batch.
    const int64_t need = kMasked ? T_ : T_ + 1;
    in_context(data_named(c.data.path) + ": ", [&] {
      for (Split split : {Split::train, Split::val})
        data::check_split_length(split, data_.size(split), need,
                                 kMasked ? "block_size" : "block_size+1");
    });
    model_ = adopt<Model>(std::move(loaded), model_config_, precision);
  }
  nn::Module& model() override { return *model_; }
  Prediction predict(Split split, Rng& rng, Rng* dropout) override {
    data::Batch b;
    Tensor logits;
    if constexpr (kMasked) {
      b = data::get_masked_batch(data_, split, B_, T_, rng);
      logits = model_->logits(b.inputs, B_, T_, {}, dropout);
    } else {
      b = data_.get_batch(split, B_, T_, rng);
      logits = model_->logits(b.inputs, B_, T_, nullptr, 0, dropout);
    }
    return {rows(logits), std::move(b.targets), B_ * T_,
            cost::training_flops(model_config_, B_, T_)};
  }

 private:
  data::TextDataset data_;
  int64_t B_, T_;
  std::unique_ptr<Model> model_;
};

class EncoderDecoderTask : public Task {
 public:
  EncoderDecoderTask(const io::Config& c, const std::optional<data::Vocab>& vocab,
                     std::unique_ptr<nn::Module> loaded, Precision precision)
      : data_(load(c, vocab)), B_(c.train.batch_size) {
    vocab_ = data_.vocab();
    for (Split split : {Split::train, Split::val})
      QKV_CHECK(data_.size(split) > 0, "{}: the {} split has no pairs; {} data.val_fraction",
                data_named(c.data.path), data::split_name(split),
                split == Split::val ? "raise" : "lower");
    fingerprint_ = data_.corpus().fingerprint();
    model_config_ = load::model_config(c, vocab_->size());
    cost::check_training_fits(model_config_, B_);
    model_ = adopt<nn::EncoderDecoderModel>(std::move(loaded), model_config_, precision);
  }
  nn::Module& model() override { return *model_; }
  // Batches are as long as their longest pair: the FLOPs count the lengths computed.
  Prediction predict(Split split, Rng& rng, Rng* dropout) override {
    data::PairBatch b = data_.get_batch(split, B_, rng);
    Tensor padding = Tensor::empty({b.B, b.Ts});
    std::copy(b.src_padding.begin(), b.src_padding.end(), padding.data());
    return {rows(model_->logits(b.src, b.tgt_in, b.B, b.Ts, b.Tt, padding, dropout)),
            std::move(b.tgt_out), b.B * b.Tt, cost::training_flops(model_config_, b.B, b.Ts, b.Tt)};
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

std::unique_ptr<Task> make_task(const io::Config& config, std::optional<load::LoadedModel> loaded,
                                Precision precision) {
  using enum nn::ModelKind;
  const std::optional<data::Vocab> vocab =
      loaded ? std::optional(std::move(loaded->vocab)) : std::nullopt;
  std::unique_ptr<nn::Module> model = loaded ? std::move(loaded->model) : nullptr;
  if (config.model.kind == decoder)
    return std::make_unique<TextTask<nn::DecoderModel>>(config, vocab, std::move(model), precision);
  if (config.model.kind == encoder)
    return std::make_unique<TextTask<nn::EncoderModel>>(config, vocab, std::move(model), precision);
  return std::make_unique<EncoderDecoderTask>(config, vocab, std::move(model), precision);
}

}  // namespace qkv::train
