// Beam search over a scoring callback, and translation with an EncoderDecoderModel on top of it.
#include <algorithm>
#include <limits>

#include "generate/inference_mode.h"
#include "qkv/error.h"
#include "qkv/generate.h"
#include "qkv/ops.h"

namespace qkv::generate {

std::vector<Hypothesis> beam_search(int64_t beam, int64_t max_length, int32_t eos,
                                    const BeamStep& step) {
  QKV_CHECK(beam >= 1, "beam search: beam = {} must be at least 1", beam);
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
  std::vector<Live> live{{{}, 0.0}};
  std::vector<Hypothesis> finished;
  std::vector<float> log_probs = step({}, {});
  for (;;) {
    const auto n = int64_t(live.size());
    const auto V = int64_t(log_probs.size()) / n;
    QKV_CHECK(V > eos && int64_t(log_probs.size()) == n * V,
              "beam search: the scorer returned {} log-probabilities for {} hypotheses and eos "
              "id {}",
              log_probs.size(), n, eos);
    std::vector<Candidate> candidates;
    for (int64_t i = 0; i < n; ++i) {
      const float* row = log_probs.data() + i * V;
      const bool must_end = int64_t(live[i].tokens.size()) == max_length;
      for (int32_t v = must_end ? eos : 0; v < (must_end ? eos + 1 : V); ++v)
        candidates.push_back({live[i].log_prob + double(row[v]), i, v});
    }
    // Each hypothesis adds at most one eos candidate, so the 2·beam best always hold `beam`
    // that go on, when that many exist. Ties rank by (parent, token): a strict order.
    const auto top = std::min<int64_t>(int64_t(candidates.size()), 2 * beam);
    std::partial_sort(candidates.begin(), candidates.begin() + top, candidates.end(),
                      [](const Candidate& a, const Candidate& b) {
                        if (a.log_prob != b.log_prob) return a.log_prob > b.log_prob;
                        return a.parent != b.parent ? a.parent < b.parent : a.token < b.token;
                      });
    std::vector<Live> next;
    std::vector<int64_t> parents;
    std::vector<int32_t> tokens;
    for (int64_t r = 0; r < top && int64_t(next.size()) < beam; ++r) {
      const Candidate& c = candidates[size_t(r)];
      const std::vector<int32_t>& prefix = live[size_t(c.parent)].tokens;
      if (c.token == eos) {
        if (r < beam)
          finished.push_back({prefix, c.log_prob, c.log_prob / double(prefix.size() + 1)});
        continue;
      }
      next.push_back({prefix, c.log_prob});
      next.back().tokens.push_back(c.token);
      parents.push_back(c.parent);
      tokens.push_back(c.token);
    }
    if (int64_t(finished.size()) >= beam || next.empty()) break;
    live = std::move(next);
    log_probs = step(parents, tokens);
  }
  std::stable_sort(finished.begin(), finished.end(),
                   [](const Hypothesis& a, const Hypothesis& b) { return a.score > b.score; });
  if (int64_t(finished.size()) > beam) finished.resize(size_t(beam));
  return finished;
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
  QKV_CHECK(!source.empty(), "translate: the input is empty");
  QKV_CHECK(int64_t(source.size()) <= block,
            "translate: the input has {} characters, more than the model's block_size = {}",
            source.size(), block);
  const int32_t bos = vocab.special_id(data::kBos), eos = vocab.special_id(data::kEos);
  // <pad>, <bos> (any special but <eos>) are never outputs, whatever an untrained model says.
  std::vector<int32_t> banned;
  for (int32_t id = int32_t(vocab.num_chars()); id < vocab.size(); ++id)
    if (id != eos) banned.push_back(id);
  InferenceMode inference(model);
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
  return beam_search(o.beam, block - 1, eos, step);
}

}  // namespace qkv::generate
