// The beam search tests' oracle (test_beam_search.cpp, test_translate.cpp): next-token
// distributions over a few tokens, a scorer that follows them, and the exhaustive search and
// greedy walk a beam is checked against.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "qkv/generate.h"

namespace qkv::testing::beam {

using namespace qkv::generate;

// Tokens a = 0, b = 1, ... and <eos> last. A distribution maps a prefix ("" for the empty
// output, "ab", ...) to the next token's log-probabilities; the scorer follows parents/tokens
// to know each hypothesis's prefix.
using Distribution = std::function<std::vector<float>(const std::string& prefix)>;

class Scorer {
 public:
  explicit Scorer(Distribution next) : next_(std::move(next)) {}

  std::vector<float> operator()(std::span<const int64_t> parents, std::span<const int32_t> tokens) {
    std::vector<std::string> prefixes;
    if (parents.empty()) prefixes.push_back("");
    for (size_t i = 0; i < parents.size(); ++i)
      prefixes.push_back(prefixes_.at(size_t(parents[i])) + char('a' + tokens[i]));
    std::vector<float> out;
    for (const std::string& p : prefixes) {
      const std::vector<float> row = next_(p);
      out.insert(out.end(), row.begin(), row.end());
    }
    prefixes_ = std::move(prefixes);
    ++calls;
    return out;
  }
  int calls = 0;

 private:
  Distribution next_;
  std::vector<std::string> prefixes_;
};

inline std::vector<float> logs(std::vector<double> probs) {
  std::vector<float> out;
  for (double p : probs) out.push_back(float(std::log(p)));
  return out;
}

// A table of probabilities over a, b, <eos>; prefixes missing from it get `otherwise`.
inline Distribution table(std::map<std::string, std::vector<double>> rows,
                          std::vector<double> otherwise = {0.1, 0.1, 0.8}) {
  return [=](const std::string& prefix) {
    const auto it = rows.find(prefix);
    return logs(it == rows.end() ? otherwise : it->second);
  };
}

// Peaked random distributions over V tokens, a function of (seed, prefix) alone.
inline Distribution random_tree(uint64_t seed, int V) {
  return [=](const std::string& prefix) {
    uint64_t h = 1469598103934665603ull ^ seed;  // FNV-1a over the prefix
    for (char c : prefix) h = (h ^ uint64_t(uint8_t(c))) * 1099511628211ull;
    Rng rng(h);
    std::vector<double> logits(static_cast<size_t>(V));
    double top = -1e300, total = 0;
    for (double& l : logits) top = std::max(top, l = 3.0 * rng.normal());
    for (double l : logits) total += std::exp(l - top);
    std::vector<float> out;
    for (double l : logits) out.push_back(float(l - top - std::log(total)));
    return out;
  };
}

inline std::string text(const std::vector<int32_t>& tokens) {
  std::string s;
  for (int32_t t : tokens) s += char('a' + t);
  return s;
}

inline double score(double log_prob, size_t tokens, double alpha) {
  return log_prob / std::pow(double(tokens + 1), alpha);
}

// Every output of at most max_length tokens, scored as beam search scores them (log-probs
// summed in double in the same order), best first; equal scores keep enumeration order.
inline std::vector<Hypothesis> exhaustive(const Distribution& next, int V, int64_t max_length,
                                          double alpha) {
  const int32_t eos = V - 1;
  std::vector<Hypothesis> all;
  std::function<void(std::vector<int32_t>&, double)> walk = [&](std::vector<int32_t>& tokens,
                                                                double log_prob) {
    const std::vector<float> row = next(text(tokens));
    const double ended = log_prob + double(row[size_t(eos)]);
    all.push_back({tokens, ended, score(ended, tokens.size(), alpha)});
    if (int64_t(tokens.size()) == max_length) return;
    for (int32_t v = 0; v < eos; ++v) {
      tokens.push_back(v);
      walk(tokens, log_prob + double(row[size_t(v)]));
      tokens.pop_back();
    }
  };
  std::vector<int32_t> empty;
  walk(empty, 0.0);
  std::stable_sort(all.begin(), all.end(),
                   [](const Hypothesis& a, const Hypothesis& b) { return a.score > b.score; });
  return all;
}

// Greedy decoding written out: the most likely token (the lowest id among ties) until <eos>.
inline Hypothesis greedy_walk(const Distribution& next, int V, int64_t max_length, double alpha) {
  const int32_t eos = V - 1;
  std::vector<int32_t> tokens;
  double log_prob = 0;
  for (;;) {
    const std::vector<float> row = next(text(tokens));
    const auto best = int32_t(std::max_element(row.begin(), row.end()) - row.begin());
    if (best == eos || int64_t(tokens.size()) == max_length) {
      log_prob += double(row[size_t(eos)]);
      return {tokens, log_prob, score(log_prob, tokens.size(), alpha)};
    }
    log_prob += double(row[size_t(best)]);
    tokens.push_back(best);
  }
}

inline std::vector<Hypothesis> search(const Distribution& next, int V, int64_t max_length,
                                      const BeamOptions& o) {
  Scorer scorer(next);
  return beam_search(o, max_length, V - 1, std::ref(scorer));
}

constexpr int32_t kEos = 2;  // after a and b

}  // namespace qkv::testing::beam
