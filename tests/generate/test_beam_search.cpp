// Beam search: on hand-made distributions where greedy decoding is wrong or where short outputs
// finish first, against an exhaustive search over every output (random distributions and
// random EncoderDecoderModels), and on an EncoderDecoderModel, where the KV cache must not
// change the result.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "generate/models.h"
#include "qkv/autograd.h"
#include "qkv/error.h"
#include "qkv/generate.h"
#include "qkv/ops.h"

using namespace qkv;
using namespace qkv::generate;

namespace {

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

std::vector<float> logs(std::vector<double> probs) {
  std::vector<float> out;
  for (double p : probs) out.push_back(float(std::log(p)));
  return out;
}

// A table of probabilities over a, b, <eos>; prefixes missing from it get `otherwise`.
Distribution table(std::map<std::string, std::vector<double>> rows,
                   std::vector<double> otherwise = {0.1, 0.1, 0.8}) {
  return [=](const std::string& prefix) {
    const auto it = rows.find(prefix);
    return logs(it == rows.end() ? otherwise : it->second);
  };
}

// Peaked random distributions over V tokens, a function of (seed, prefix) alone.
Distribution random_tree(uint64_t seed, int V) {
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

std::string text(const std::vector<int32_t>& tokens) {
  std::string s;
  for (int32_t t : tokens) s += char('a' + t);
  return s;
}

double score(double log_prob, size_t tokens, double alpha) {
  return log_prob / std::pow(double(tokens + 1), alpha);
}

// Every output of at most max_length tokens, scored as beam search scores them (log-probs
// summed in double in the same order), best first; equal scores keep enumeration order.
std::vector<Hypothesis> exhaustive(const Distribution& next, int V, int64_t max_length,
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
Hypothesis greedy_walk(const Distribution& next, int V, int64_t max_length, double alpha) {
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

std::vector<Hypothesis> search(const Distribution& next, int V, int64_t max_length,
                               const BeamOptions& o) {
  Scorer scorer(next);
  return beam_search(o, max_length, V - 1, std::ref(scorer));
}

constexpr int32_t kEos = 2;  // after a and b

}  // namespace

TEST_CASE("beam search: beam 2 finds the better sequence that greedy decoding misses") {
  // Greedy takes 'a' (0.6) and then ends (0.4): score (ln 0.6 + ln 0.4) / 2 = -0.71. Starting with
  // the less likely 'b' (0.4) ends almost surely (0.95): (ln 0.4 + ln 0.95) / 2 = -0.48.
  const Distribution trap =
      table({{"", {0.6, 0.4, 1e-6}}, {"a", {0.3, 0.3, 0.4}}, {"b", {0.025, 0.025, 0.95}}});
  const std::vector<Hypothesis> greedy = search(trap, 3, 10, {.beam = 1});
  REQUIRE(greedy.size() == 1);
  CHECK(text(greedy[0].tokens) == "a");
  CHECK(greedy[0].log_prob == doctest::Approx(std::log(0.6) + std::log(0.4)).epsilon(1e-6));

  const std::vector<Hypothesis> beam = search(trap, 3, 10, {.beam = 2, .n_best = 2});
  REQUIRE(beam.size() == 2);
  CHECK(text(beam[0].tokens) == "b");
  CHECK(beam[0].log_prob == doctest::Approx(std::log(0.4) + std::log(0.95)).epsilon(1e-6));
  CHECK(beam[0].score == doctest::Approx(beam[0].log_prob / 2));
  // "aa" (0.6 · 0.3 · 0.8: -0.65 per token) outscores "a", which finished first.
  CHECK(text(beam[1].tokens) == "aa");
  CHECK(beam[0].score > greedy[0].score);
}

TEST_CASE("beam search: beam 1 is the argmax loop") {
  // The most likely token is a, then b, then a, then <eos>.
  Scorer scorer(table({{"", {0.7, 0.2, 0.1}},
                       {"a", {0.2, 0.7, 0.1}},
                       {"ab", {0.6, 0.3, 0.1}},
                       {"aba", {0.1, 0.2, 0.7}}}));
  const std::vector<Hypothesis> h = beam_search({.beam = 1}, 10, kEos, std::ref(scorer));
  REQUIRE(h.size() == 1);
  CHECK(text(h[0].tokens) == "aba");
  CHECK(h[0].log_prob ==
        doctest::Approx(std::log(0.7) + std::log(0.7) + std::log(0.6) + std::log(0.7)));
  CHECK(scorer.calls == 4);
}

TEST_CASE("beam search: a hypothesis at max_length must end, and pays for its <eos>") {
  const Distribution likes_a = table({}, {0.9, 0.09, 0.01});
  const std::vector<Hypothesis> h = search(likes_a, 3, 2, {.beam = 1});
  REQUIRE(h.size() == 1);
  CHECK(text(h[0].tokens) == "aa");
  CHECK(h[0].log_prob == doctest::Approx(2 * std::log(0.9) + std::log(0.01)).epsilon(1e-6));
  CHECK(h[0].score == doctest::Approx(h[0].log_prob / 3));
}

TEST_CASE("beam search: it runs on while a live hypothesis can still beat the finished ones") {
  // The answer is nine a's, each 0.9 likely, then <eos> (0.99); every prefix holding a b ends
  // at once (0.9). Four short outputs finish within three steps, all far below the answer's
  // score per token: stopping when `beam` have finished would return them.
  const Distribution nine_as = [](const std::string& p) {
    if (p.find('b') != std::string::npos) return logs({0.05, 0.05, 0.9});
    return logs(p.size() < 9 ? std::vector<double>{0.9, 0.07, 0.03}
                             : std::vector{0.005, 0.005, 0.99});
  };
  for (double alpha : {0.0, 1.0}) {
    CAPTURE(alpha);
    const std::vector<Hypothesis> h =
        search(nine_as, 3, 15, {.beam = 4, .n_best = 4, .length_penalty = alpha});
    REQUIRE(h.size() == 4);
    const std::vector<Hypothesis> all = exhaustive(nine_as, 3, 15, alpha);
    for (size_t i = 0; i < 4; ++i) CHECK(text(h[i].tokens) == text(all[i].tokens));
    if (alpha == 1.0) CHECK(text(h[0].tokens) == "aaaaaaaaa");
  }
}

TEST_CASE("beam search: a wide enough beam finds the n best of an exhaustive search") {
  // With a beam of C^max_length (C = V - 1 tokens besides <eos>) nothing is ever pruned, so
  // only the stopping rule stands between the search and the exhaustive answer.
  struct Case {
    int V;
    int64_t max_length;
  };
  for (const Case c : {Case{3, 6}, Case{4, 6}, Case{6, 4}, Case{6, 1}})
    for (double alpha : {0.0, 0.6, 1.0, 2.0})
      for (uint64_t seed = 1; seed <= 4; ++seed) {
        CAPTURE(c.V);
        CAPTURE(c.max_length);
        CAPTURE(alpha);
        CAPTURE(seed);
        const Distribution next = random_tree(seed, c.V);
        const auto width = int64_t(std::pow(c.V - 1, c.max_length));
        const std::vector<Hypothesis> all = exhaustive(next, c.V, c.max_length, alpha);
        const std::vector<Hypothesis> found =
            search(next, c.V, c.max_length, {.beam = width, .n_best = 3, .length_penalty = alpha});
        REQUIRE(found.size() == 3);
        for (size_t i = 0; i < 3; ++i) {
          CHECK(text(found[i].tokens) == text(all[i].tokens));
          CHECK(found[i].score == all[i].score);
        }
      }
}

TEST_CASE("beam search: any beam scores at least as high as greedy decoding; beam 1 is greedy") {
  for (int V : {3, 4, 6})
    for (double alpha : {0.0, 0.6, 1.0, 2.0})
      for (uint64_t seed = 1; seed <= 12; ++seed) {
        CAPTURE(V);
        CAPTURE(alpha);
        CAPTURE(seed);
        const Distribution next = random_tree(seed, V);
        const Hypothesis greedy = greedy_walk(next, V, 8, alpha);
        const std::vector<Hypothesis> one = search(next, V, 8, {.length_penalty = alpha});
        CHECK(one.front().tokens == greedy.tokens);
        CHECK(one.front().score == greedy.score);
        for (int64_t beam : {2, 3, 5})
          CHECK(search(next, V, 8, {.beam = beam, .length_penalty = alpha}).front().score >=
                greedy.score);
      }
}

TEST_CASE("beam search: bad options and a scorer of the wrong size are errors") {
  const Distribution any = table({});
  auto fails = [&](BeamOptions o, int32_t eos, const char* message) {
    Scorer scorer(any);
    CHECK_THROWS_WITH_AS(beam_search(o, 5, eos, std::ref(scorer)), doctest::Contains(message),
                         Error);
  };
  fails({.beam = 0}, kEos, "beam search: beam = 0 must be at least 1");
  fails({.beam = 2, .n_best = 3}, kEos, "n_best = 3 must be between 1 and beam = 2");
  fails({.beam = 2, .n_best = 0}, kEos, "n_best = 0 must be between 1 and beam = 2");
  fails({.length_penalty = -1}, kEos, "length_penalty = -1 must be a number >= 0");
  fails({.length_penalty = INFINITY}, kEos, "length_penalty = inf must be a number >= 0");
  fails({.beam = 2}, 7, "3 log-probabilities for 1 hypotheses and eos id 7");
}

namespace {

// Greedy decoding written out: decode the whole prefix each step and take the argmax.
std::vector<int32_t> naive_greedy(nn::EncoderDecoderModel& m, const data::Vocab& vocab,
                                  const std::vector<int32_t>& src) {
  NoGradGuard no_grad;
  const Tensor memory = m.encode(src, 1, int64_t(src.size()));
  std::vector<int32_t> in{vocab.special_id(data::kBos)}, out;
  while (int64_t(in.size()) <= m.config().block_size) {
    const Tensor logits = m.decode(memory, {}, in, 1, int64_t(in.size()));
    const float* row = logits.data() + (logits.size(1) - 1) * logits.size(2);
    int32_t next = vocab.special_id(data::kEos);  // or a character
    for (int32_t v = 0; v < vocab.num_chars(); ++v)
      if (row[v] > row[next]) next = v;
    if (next == vocab.special_id(data::kEos) || int64_t(in.size()) == m.config().block_size) break;
    out.push_back(next);
    in.push_back(next);
  }
  return out;
}

// The model's next-token distribution after <bos> + prefix, as translate sees it: log_softmax
// of a full decode, the special tokens but <eos> impossible, <eos> moved last (the characters
// are ids 0..C-1 and "a" + id spells them).
Distribution decoder_distribution(nn::EncoderDecoderModel& m, const data::Vocab& vocab,
                                  const Tensor& memory) {
  return [&m, &vocab, memory](const std::string& prefix) {
    std::vector<int32_t> in{vocab.special_id(data::kBos)};
    for (char c : prefix) in.push_back(int32_t(c - 'a'));
    const auto T = int64_t(in.size());
    const Tensor lp = log_softmax(narrow(m.decode(memory, {}, in, 1, T), 1, T - 1, 1));
    const float* row = lp.data();
    std::vector<float> out(row, row + vocab.num_chars());
    out.push_back(row[vocab.special_id(data::kEos)]);
    return out;
  };
}

}  // namespace

TEST_CASE("translate: a wide enough beam finds the best outputs of an exhaustive search") {
  // 3 characters and max_length 6: 1,093 outputs, and a beam of 3^6 = 729 never prunes.
  const data::Vocab vocab = data::Vocab::from_text("abc", {data::kPad, data::kBos, data::kEos});
  REQUIRE(vocab.size() == 6);
  io::Config c = testing::tiny_config(nn::ModelKind::encoder_decoder);
  c.model.block_size = 7;
  for (uint64_t seed : {2, 5}) {
    auto model = testing::make_model<nn::EncoderDecoderModel>(c, vocab, seed);
    NoGradGuard no_grad;
    const std::vector<int32_t> src = vocab.encode("abcab");
    const Distribution next =
        decoder_distribution(*model, vocab, model->encode(src, 1, int64_t(src.size())));
    for (double alpha : {0.0, 1.0}) {
      CAPTURE(seed);
      CAPTURE(alpha);
      const std::vector<Hypothesis> all = exhaustive(next, 4, 6, alpha);
      const std::vector<Hypothesis> found = translate(
          *model, vocab, src,
          {.search = {.beam = 729, .n_best = 3, .length_penalty = alpha}, .use_cache = false});
      REQUIRE(found.size() == 3);
      for (size_t i = 0; i < 3; ++i) {
        CHECK(found[i].tokens == all[i].tokens);
        CHECK(found[i].score == all[i].score);
      }
      // The beam that a user would run stays at or above greedy decoding.
      const Hypothesis greedy = greedy_walk(next, 4, 6, alpha);
      CHECK(translate(*model, vocab, src, {.search = {.beam = 4, .length_penalty = alpha}})
                .front()
                .score >= greedy.score - 1e-5);
    }
  }
}

TEST_CASE("translate: greedy equals the argmax loop; the cache does not change any beam") {
  const data::Vocab vocab = testing::pair_vocab();
  // Seed 21: some outputs end early, others run to max_length.
  auto model = testing::make_model<nn::EncoderDecoderModel>(
      testing::tiny_config(nn::ModelKind::encoder_decoder), vocab, 21);
  int ended = 0;
  for (std::string_view src : {"abc", "hgfedcba", "aaaaaaaaaaaaaaaa", "d"}) {
    CAPTURE(src);
    const std::vector<int32_t> ids = vocab.encode(src);
    const std::vector<Hypothesis> greedy = translate(*model, vocab, ids);
    REQUIRE(greedy.size() == 1);
    CHECK(greedy[0].tokens == naive_greedy(*model, vocab, ids));
    ended += greedy[0].tokens.size() < 15;
    for (int64_t beam : {1, 3}) {
      CAPTURE(beam);
      const BeamOptions search{.beam = beam, .n_best = beam};
      const std::vector<Hypothesis> cached = translate(*model, vocab, ids, {.search = search});
      const std::vector<Hypothesis> uncached =
          translate(*model, vocab, ids, {.search = search, .use_cache = false});
      REQUIRE(cached.size() == uncached.size());
      CHECK(int64_t(cached.size()) == beam);
      for (size_t i = 0; i < cached.size(); ++i) {
        CHECK(cached[i].tokens == uncached[i].tokens);
        CHECK(std::abs(cached[i].log_prob - uncached[i].log_prob) < 1e-4);
        CHECK(cached[i].tokens.size() <= 15);  // block_size - 1
      }
    }
  }
  CHECK(ended > 0);  // some outputs end by <eos> before max_length
  CHECK(ended < 4);
}

TEST_CASE("translate: max_length caps the output") {
  const data::Vocab vocab = testing::pair_vocab();
  auto model = testing::make_model<nn::EncoderDecoderModel>(
      testing::tiny_config(nn::ModelKind::encoder_decoder), vocab, 21);
  const std::vector<int32_t> ids = vocab.encode("aaaaaaaaaaaaaaaa");  // greedy runs to 15
  REQUIRE(translate(*model, vocab, ids).front().tokens.size() == 15);
  for (int64_t beam : {1, 3})
    for (const Hypothesis& h :
         translate(*model, vocab, ids, {.search = {.beam = beam, .n_best = beam}, .max_length = 4}))
      CHECK(h.tokens.size() <= 4);
}

TEST_CASE("translate: outputs hold no special token, even from a model that favours them") {
  const data::Vocab vocab = testing::pair_vocab();
  // These random models put <pad> or <bos> first at some steps.
  for (uint64_t seed : {8, 14}) {
    auto model = testing::make_model<nn::EncoderDecoderModel>(
        testing::tiny_config(nn::ModelKind::encoder_decoder), vocab, seed);
    for (int64_t beam : {1, 3})
      for (const Hypothesis& h : translate(*model, vocab, vocab.encode("abc"),
                                           {.search = {.beam = beam, .n_best = beam}}))
        for (int32_t t : h.tokens) CHECK(t < vocab.num_chars());
  }
}

TEST_CASE("translate: an empty or too long input, or a max_length past the block, is an error") {
  const data::Vocab vocab = testing::pair_vocab();
  auto model = testing::make_model<nn::EncoderDecoderModel>(
      testing::tiny_config(nn::ModelKind::encoder_decoder), vocab, 6);
  CHECK_THROWS_WITH_AS(translate(*model, vocab, {}), "translate: the input is empty", Error);
  CHECK_THROWS_WITH_AS(translate(*model, vocab, vocab.encode("abcdefghabcdefgha")),
                       "translate: the input has 17 characters, more than the model's "
                       "block_size = 16",
                       Error);
  CHECK_THROWS_WITH_AS(translate(*model, vocab, vocab.encode("abc"), {.max_length = 16}),
                       "translate: max_length = 16 is outside [0, 15]: the decoder holds "
                       "block_size = 16 positions, <bos> and the output",
                       Error);
}
