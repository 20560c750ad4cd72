// Beam search over a scoring callback, and translation with an EncoderDecoderModel on top of it.
#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "generate/check_vocab.h"
#include "qkv/autograd.h"
#include "qkv/error.h"
#include "qkv/generate.h"
#include "qkv/ops.h"

namespace qkv::generate {

void validate(const BeamOptions& o) {
  QKV_CHECK(o.beam >= 1, "beam search: beam = {} must be at least 1", o.beam);
  QKV_CHECK(o.n_best >= 1 && o.n_best <= o.beam,
            "beam search: n_best = {} must be between 1 and beam = {} (a beam of N keeps N "
            "hypotheses)",
            o.n_best, o.beam);
  QKV_CHECK(std::isfinite(o.length_penalty) && o.length_penalty >= 0,
            "beam search: length_penalty = {} must be a number >= 0 (0 = no normalisation)",
            o.length_penalty);
}

namespace {

// The n best finished hypotheses so far, best first; among equal scores, the one found first.
class Finished {
 public:
  explicit Finished(int64_t n) : n_(size_t(n)) {}

  void offer(Hypothesis h) {
    const auto at =
        std::upper_bound(kept_.begin(), kept_.end(), h.score,
                         [](double score, const Hypothesis& k) { return score > k.score; });
    if (at - kept_.begin() >= ptrdiff_t(n_)) return;
    kept_.insert(at, std::move(h));
    if (kept_.size() > n_) kept_.pop_back();
  }
  bool full() const { return kept_.size() == n_; }
  double worst_score() const { return kept_.back().score; }
  std::vector<Hypothesis> take() { return std::move(kept_); }

 private:
  size_t n_;
  std::vector<Hypothesis> kept_;
};

// A finished output's score: its log-probability over its length (its tokens and <eos>)^alpha.
double normalised(double log_prob, size_t tokens, double alpha) {
  return log_prob / std::pow(double(tokens + 1), alpha);
}

}  // namespace

std::vector<Hypothesis> beam_search(const BeamOptions& o, int64_t max_length, int32_t eos,
                                    const BeamStep& step) {
  validate(o);
  QKV_CHECK(max_length >= 0, "beam search: max_length = {} is negative", max_length);
  struct Live {
    std::vector<int32_t> tokens;
    double log_prob;
  };
  struct Candidate {
    double log_prob;
    int64_t parent;
    int32_t token;
  };
  const double alpha = o.length_penalty;
  // A live hypothesis's log-probability only falls as it grows, and the longest output divides
  // it the most: log_prob / longest is the best score it can still reach.
  const double longest = std::pow(double(max_length + 1), alpha);
  const int64_t width = o.beam == 1 ? 0 : o.beam;  // beam 1: the greedy path alone
  std::vector<Live> live{{{}, 0.0}};
  int64_t greedy = 0;  // the greedy path's index in live; -1 once it has ended
  Finished finished(o.n_best);
  std::vector<float> log_probs = step({}, {});
  for (;;) {
    const auto n = int64_t(live.size());
    const auto V = int64_t(log_probs.size()) / n;
    QKV_CHECK(V > eos && int64_t(log_probs.size()) == n * V,
              "beam search: the scorer returned {} log-probabilities for {} hypotheses and eos "
              "id {}",
              log_probs.size(), n, eos);
    std::vector<Candidate> candidates;
    int32_t greedy_token = -1;  // the greedy path's next token, eos when it ends
    for (int64_t i = 0; i < n; ++i) {
      const float* row = log_probs.data() + i * V;
      const Live& h = live[size_t(i)];
      const bool must_end = int64_t(h.tokens.size()) == max_length;
      for (int32_t v = must_end ? eos : 0; v < (must_end ? eos + 1 : V); ++v)
        if (row[v] > -std::numeric_limits<float>::infinity())
          candidates.push_back({h.log_prob + double(row[v]), i, v});
      if (i == greedy) greedy_token = must_end ? eos : top_ids(std::span(row, size_t(V)), 1)[0];
    }
    // Ties rank by (parent, token): a strict order, so the beam is fully determined.
    std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
      if (a.log_prob != b.log_prob) return a.log_prob > b.log_prob;
      return a.parent != b.parent ? a.parent < b.parent : a.token < b.token;
    });
    // An ending among the `beam` most likely extensions finishes its hypothesis; the `width`
    // most likely others go on. The greedy path's next hypothesis does either, whatever its rank.
    std::vector<Live> next;
    std::vector<int64_t> parents;
    std::vector<int32_t> tokens;
    const int64_t greedy_parent = std::exchange(greedy, -1);
    for (size_t r = 0; r < candidates.size(); ++r) {
      const Candidate& c = candidates[r];
      const std::vector<int32_t>& prefix = live[size_t(c.parent)].tokens;
      const bool greedy_path = c.parent == greedy_parent && c.token == greedy_token;
      if (c.token == eos) {
        if (int64_t(r) < o.beam || greedy_path)
          finished.offer({prefix, c.log_prob, normalised(c.log_prob, prefix.size(), alpha)});
      } else if (int64_t(next.size()) < width || greedy_path) {
        if (greedy_path) greedy = int64_t(next.size());
        next.push_back({prefix, c.log_prob});
        next.back().tokens.push_back(c.token);
        parents.push_back(c.parent);
        tokens.push_back(c.token);
      }
    }
    if (next.empty()) break;
    double best_live = -std::numeric_limits<double>::infinity();
    for (const Live& h : next) best_live = std::max(best_live, h.log_prob);
    if (finished.full() && best_live / longest <= finished.worst_score()) break;
    live = std::move(next);
    log_probs = step(parents, tokens);
  }
  return finished.take();
}

namespace {

// Log-probabilities of the last position of decoder logits [1, T, V].
std::vector<float> last_log_probs(const Tensor& logits) {
  const int64_t T = logits.size(1), V = logits.size(2);
  const Tensor lp = log_softmax(narrow(logits, 1, T - 1, 1));
  return std::vector<float>(lp.data(), lp.data() + V);
}

}  // namespace

std::vector<Hypothesis> translate(nn::EncoderDecoderModel& model, const data::Vocab& vocab,
                                  std::span<const int32_t> source, const TranslateOptions& o) {
  const int64_t block = model.config().block_size;
  check_vocab("translate", vocab, model.config().vocab_size);
  validate(o.search);
  const int64_t max_length = o.max_length.value_or(block - 1);
  QKV_CHECK(max_length >= 0 && max_length < block,
            "translate: max_length = {} is outside [0, {}]: the decoder holds block_size = {} "
            "positions, <bos> and the output",
            max_length, block - 1, block);
  QKV_CHECK(!source.empty(), "translate: the input is empty");
  QKV_CHECK(int64_t(source.size()) <= block,
            "translate: the input has {} characters, more than the model's block_size = {}",
            source.size(), block);
  const int32_t bos = vocab.special_id(data::kBos), eos = vocab.special_id(data::kEos);
  // <pad>, <bos> (any special but <eos>) are never outputs, whatever an untrained model says.
  std::vector<int32_t> banned;
  for (int32_t id = int32_t(vocab.num_chars()); id < vocab.size(); ++id)
    if (id != eos) banned.push_back(id);
  NoGradGuard no_grad;
  const Tensor memory = model.encode(source, 1, int64_t(source.size()));

  // Per hypothesis: its decoder input (<bos> + tokens) and, with the cache, its KV cache.
  // A child starts from a copy of its parent's cache. Copying the handles is enough: a cache
  // shared with a copy is copied before a position is appended to it (KVCache, qkv/ops.h), so
  // parent and children never see each other's positions.
  std::vector<std::vector<int32_t>> inputs;
  std::vector<std::vector<nn::LayerCache>> caches;
  const BeamStep step = [&](std::span<const int64_t> parents, std::span<const int32_t> tokens) {
    std::vector<std::vector<int32_t>> next_inputs;
    std::vector<std::vector<nn::LayerCache>> next_caches;
    if (parents.empty()) {
      next_inputs.push_back({bos});
      next_caches.emplace_back();
    }
    for (size_t i = 0; i < parents.size(); ++i) {
      next_inputs.push_back(inputs[size_t(parents[i])]);
      next_inputs.back().push_back(tokens[i]);
      if (o.use_cache) next_caches.push_back(caches[size_t(parents[i])]);
    }
    std::vector<float> out;
    for (size_t i = 0; i < next_inputs.size(); ++i) {
      const std::vector<int32_t>& in = next_inputs[i];
      const auto T = int64_t(in.size());
      const Tensor logits = o.use_cache ? model.decode(memory, {}, std::span(in).last(1), 1, 1,
                                                       &next_caches[i], T - 1)
                                        : model.decode(memory, {}, in, 1, T);
      std::vector<float> lp = last_log_probs(logits);
      for (int32_t id : banned) lp[size_t(id)] = -std::numeric_limits<float>::infinity();
      out.insert(out.end(), lp.begin(), lp.end());
    }
    inputs = std::move(next_inputs);
    caches = std::move(next_caches);
    return out;
  };
  return beam_search(o.search, max_length, eos, step);
}

}  // namespace qkv::generate
