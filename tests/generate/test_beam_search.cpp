// Beam search: on a hand-made table of log-probabilities where greedy decoding is wrong, and on
// an EncoderDecoderModel, where the KV cache must not change the result.
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "generate/models.h"
#include "qkv/autograd.h"
#include "qkv/error.h"
#include "qkv/generate.h"

using namespace qkv;
using namespace qkv::generate;

namespace {

// Tokens a = 0, b = 1, <eos> = 2. A table maps a prefix ("" for the empty output, "ab", ...) to
// the next-token probabilities; the scorer follows parents/tokens to know each prefix.
constexpr int32_t kEos = 2;

class TableScorer {
 public:
  explicit TableScorer(std::map<std::string, std::vector<double>> table)
      : table_(std::move(table)) {}

  std::vector<float> operator()(std::span<const int64_t> parents, std::span<const int32_t> tokens) {
    std::vector<std::string> next;
    if (parents.empty()) next.push_back("");
    for (size_t i = 0; i < parents.size(); ++i)
      next.push_back(prefixes_.at(size_t(parents[i])) + char('a' + tokens[i]));
    std::vector<float> out;
    for (const std::string& p : next) {
      const auto it = table_.find(p);
      REQUIRE_MESSAGE(it != table_.end(), "no table row for '" << p << "'");
      for (double prob : it->second) out.push_back(float(std::log(prob)));
    }
    prefixes_ = next;
    ++calls;
    return out;
  }
  int calls = 0;

 private:
  std::map<std::string, std::vector<double>> table_;
  std::vector<std::string> prefixes_;
};

// Greedy takes 'a' (0.6) and then ends (0.4): score (ln 0.6 + ln 0.4) / 2 = -0.71. Starting with
// the less likely 'b' (0.4) ends almost surely (0.95): (ln 0.4 + ln 0.95) / 2 = -0.48.
const std::map<std::string, std::vector<double>> kTrap = {
    {"", {0.6, 0.4, 1e-6}},   {"a", {0.3, 0.3, 0.4}},   {"b", {0.025, 0.025, 0.95}},
    {"aa", {0.1, 0.1, 0.8}},  {"ab", {0.1, 0.1, 0.8}},  {"ba", {0.1, 0.1, 0.8}},
    {"bb", {0.1, 0.1, 0.8}},  {"aaa", {0.1, 0.1, 0.8}}, {"aab", {0.1, 0.1, 0.8}},
    {"aba", {0.1, 0.1, 0.8}}, {"abb", {0.1, 0.1, 0.8}}};

std::string text(const Hypothesis& h) {
  std::string s;
  for (int32_t t : h.tokens) s += char('a' + t);
  return s;
}

}  // namespace

TEST_CASE("beam search: beam 2 finds the better sequence that greedy decoding misses") {
  TableScorer greedy_scorer(kTrap);
  const std::vector<Hypothesis> greedy = beam_search(1, 10, kEos, std::ref(greedy_scorer));
  REQUIRE(greedy.size() == 1);
  CHECK(text(greedy[0]) == "a");
  CHECK(greedy[0].log_prob == doctest::Approx(std::log(0.6) + std::log(0.4)).epsilon(1e-6));

  TableScorer scorer(kTrap);
  const std::vector<Hypothesis> beam = beam_search(2, 10, kEos, std::ref(scorer));
  REQUIRE(beam.size() == 2);
  CHECK(text(beam[0]) == "b");
  CHECK(beam[0].log_prob == doctest::Approx(std::log(0.4) + std::log(0.95)).epsilon(1e-6));
  CHECK(beam[0].score == doctest::Approx(beam[0].log_prob / 2));
  CHECK(text(beam[1]) == "a");
  CHECK(beam[0].score > greedy[0].score);
}

TEST_CASE("beam search: beam 1 is the argmax loop") {
  // The most likely token is a, then b, then a, then <eos>.
  const std::map<std::string, std::vector<double>> table = {{"", {0.7, 0.2, 0.1}},
                                                            {"a", {0.2, 0.7, 0.1}},
                                                            {"ab", {0.6, 0.3, 0.1}},
                                                            {"aba", {0.1, 0.2, 0.7}}};
  TableScorer scorer(table);
  const std::vector<Hypothesis> h = beam_search(1, 10, kEos, std::ref(scorer));
  REQUIRE(h.size() == 1);
  CHECK(text(h[0]) == "aba");
  CHECK(h[0].log_prob ==
        doctest::Approx(std::log(0.7) + std::log(0.7) + std::log(0.6) + std::log(0.7)));
  CHECK(scorer.calls == 4);
}

TEST_CASE("beam search: a hypothesis at max_length must end, and pays for its <eos>") {
  const std::map<std::string, std::vector<double>> table = {
      {"", {0.9, 0.09, 0.01}}, {"a", {0.9, 0.09, 0.01}}, {"aa", {0.9, 0.09, 0.01}}};
  TableScorer scorer(table);
  const std::vector<Hypothesis> h = beam_search(1, 2, kEos, std::ref(scorer));
  REQUIRE(h.size() == 1);
  CHECK(text(h[0]) == "aa");
  CHECK(h[0].log_prob == doctest::Approx(2 * std::log(0.9) + std::log(0.01)).epsilon(1e-6));
  CHECK(h[0].score == doctest::Approx(h[0].log_prob / 3));
}

TEST_CASE("beam search: bad arguments and a scorer of the wrong size are errors") {
  TableScorer scorer(kTrap);
  CHECK_THROWS_WITH_AS(beam_search(0, 5, kEos, std::ref(scorer)),
                       "beam search: beam = 0 must be at least 1", Error);
  CHECK_THROWS_WITH_AS(beam_search(2, 5, 7, std::ref(scorer)),
                       doctest::Contains("3 log-probabilities for 1 hypotheses and eos id 7"),
                       Error);
}

namespace {

// Greedy decoding written out: decode the whole prefix each step and take the argmax.
std::vector<int32_t> naive_greedy(nn::EncoderDecoderModel& m, const data::Vocab& vocab,
                                  const std::vector<int32_t>& src) {
  NoGradGuard no_grad;
  m.eval();
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

}  // namespace

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
      const std::vector<Hypothesis> cached = translate(*model, vocab, ids, {.beam = beam});
      const std::vector<Hypothesis> uncached =
          translate(*model, vocab, ids, {.beam = beam, .use_cache = false});
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

TEST_CASE("translate: outputs hold no special token, even from a model that favours them") {
  const data::Vocab vocab = testing::pair_vocab();
  // These random models put <pad> or <bos> first at some steps.
  for (uint64_t seed : {8, 14}) {
    auto model = testing::make_model<nn::EncoderDecoderModel>(
        testing::tiny_config(nn::ModelKind::encoder_decoder), vocab, seed);
    for (int64_t beam : {1, 3})
      for (const Hypothesis& h : translate(*model, vocab, vocab.encode("abc"), {.beam = beam}))
        for (int32_t t : h.tokens) CHECK(t < vocab.num_chars());
  }
}

TEST_CASE("translate: an empty or too long input is an error") {
  const data::Vocab vocab = testing::pair_vocab();
  auto model = testing::make_model<nn::EncoderDecoderModel>(
      testing::tiny_config(nn::ModelKind::encoder_decoder), vocab, 6);
  CHECK_THROWS_WITH_AS(translate(*model, vocab, {}), "translate: the input is empty", Error);
  CHECK_THROWS_WITH_AS(translate(*model, vocab, vocab.encode("abcdefghabcdefgha")),
                       "translate: the input has 17 characters, more than the model's "
                       "block_size = 16",
                       Error);
}
