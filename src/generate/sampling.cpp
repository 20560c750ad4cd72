// Decoder sampling: the token-choosing rule and the generation loop over a sliding window,
// with or without the KV cache.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "generate/check_vocab.h"
#include "qkv/autograd.h"
#include "qkv/data/utf8.h"
#include "qkv/error.h"
#include "qkv/generate.h"

namespace qkv::generate {

void validate(const SamplingOptions& o) {
  QKV_CHECK(o.max_new_tokens >= 0, "sample: max-new-tokens = {} is negative", o.max_new_tokens);
  QKV_CHECK(std::isfinite(o.temperature) && o.temperature >= 0.0f,
            "sample: temperature = {} must be a number >= 0 (0 means greedy)", o.temperature);
  QKV_CHECK(o.top_k >= 0, "sample: top-k = {} is negative", o.top_k);
  QKV_CHECK(o.top_p > 0.0f && o.top_p <= 1.0f,
            "sample: top-p = {} is outside (0, 1] (1 keeps every token)", o.top_p);
  for (const std::string& s : o.stop) {
    QKV_CHECK(!s.empty(), "sample: a stop string is empty");
    data::decode_utf8(s, "sample: stop string");  // generated text never holds invalid UTF-8
  }
}

std::vector<int32_t> top_ids(std::span<const float> scores, int64_t k) {
  std::vector<int32_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  // Ties by id make the order strict, so partial_sort's result is fully determined.
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
    return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
  });
  order.resize(size_t(k));
  return order;
}

int32_t sample_token(std::span<const float> logits, const SamplingOptions& o, Rng& rng) {
  const auto V = int64_t(logits.size());
  QKV_CHECK(V > 0, "sample: no logits to sample from");
  if (o.temperature == 0.0f) return top_ids(logits, 1)[0];
  const std::vector<int32_t> order = top_ids(logits, o.top_k > 0 ? std::min(o.top_k, V) : V);

  // Unnormalised softmax at the temperature, in double, relative to the top logit.
  std::vector<double> weight(order.size());
  double total = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    weight[i] = std::exp((double(logits[order[i]]) - double(logits[order[0]])) / o.temperature);
    total += weight[i];
  }
  size_t n = order.size();
  if (o.top_p < 1.0f) {
    double mass = 0;
    for (size_t i = 0; i < order.size(); ++i) {
      mass += weight[i];
      if (mass >= double(o.top_p) * total) {
        n = i + 1;
        break;
      }
    }
    total = std::accumulate(weight.begin(), weight.begin() + ptrdiff_t(n), 0.0);
  }
  const double u = double(rng.uniform()) * total;
  double mass = 0;
  for (size_t i = 0; i < n; ++i) {
    mass += weight[i];
    if (u < mass) return order[i];
  }
  return order[n - 1];  // u landed on the rounding gap at the very end of the mass
}

namespace {

// The window of token ids the model currently sees, and how to get the next logits from it.
class Window {
 public:
  Window(nn::DecoderModel& model, std::span<const int32_t> prompt, const SamplingOptions& o)
      : model_(model),
        block_(model.config().block_size),
        policy_(o.window),
        cache_on_(o.use_cache) {
    const size_t start = prompt.size() > size_t(block_) ? prompt.size() - size_t(block_) : 0;
    ids_.assign(prompt.begin() + ptrdiff_t(start), prompt.end());
    recompute();
  }

  // Logits [V] for the token after the window.
  std::span<const float> logits() const { return last_; }

  void push(int32_t id) {
    if (int64_t(ids_.size()) == block_) return slide(id);
    ids_.push_back(id);
    if (!cache_on_) return recompute();
    const int32_t one[] = {id};
    keep_last_row(model_.logits(one, 1, 1, &cache_, int64_t(ids_.size()) - 1));
  }

 private:
  // The window is full and id must go in.
  void slide(int32_t id) {
    if (policy_ == WindowPolicy::exact) {
      // From now on the window stays full and every position moves at every token, so no
      // cached key or value is valid again: the cache is dropped for good.
      ids_.erase(ids_.begin());
      cache_on_ = false;
    } else {
      ids_.erase(ids_.begin(), ids_.end() - (std::max<int64_t>(block_ / 2, 1) - 1));
    }
    ids_.push_back(id);
    cache_.clear();
    recompute();
  }
  // One pass over the whole window; with the cache on, it also fills the cache.
  void recompute() {
    const auto T = int64_t(ids_.size());
    keep_last_row(model_.logits(ids_, 1, T, cache_on_ ? &cache_ : nullptr, 0));
  }
  void keep_last_row(const Tensor& logits) {  // logits: [1, T, V]
    const int64_t T = logits.size(1), V = logits.size(2);
    const float* row = logits.data() + (T - 1) * V;
    last_.assign(row, row + V);
  }

  nn::DecoderModel& model_;
  int64_t block_;
  WindowPolicy policy_;
  bool cache_on_;  // use the KV cache for the next token
  std::vector<int32_t> ids_;
  std::vector<nn::LayerCache> cache_;
  std::vector<float> last_;
};

}  // namespace

Generation sample(nn::DecoderModel& model, const data::Vocab& vocab,
                  std::span<const int32_t> prompt, const SamplingOptions& options, Rng& rng,
                  const TokenCallback& on_token) {
  validate(options);
  check_vocab("sample", vocab, model.config().vocab_size);
  QKV_CHECK(!prompt.empty(), "sample: the prompt is empty; give at least one character");
  NoGradGuard no_grad;
  Generation out;
  if (options.max_new_tokens == 0) return out;
  Window window(model, prompt, options);
  for (int64_t i = 0; i < options.max_new_tokens; ++i) {
    const int32_t id = sample_token(window.logits(), options, rng);
    const int32_t one[] = {id};
    const std::string piece = vocab.decode(one);
    out.tokens.push_back(id);
    out.text += piece;
    if (on_token) on_token({id, piece, window.logits()});
    for (const std::string& s : options.stop)
      if (out.text.ends_with(s)) {
        out.stop = s;
        return out;
      }
    if (i + 1 < options.max_new_tokens) window.push(id);
  }
  return out;
}

}  // namespace qkv::generate
