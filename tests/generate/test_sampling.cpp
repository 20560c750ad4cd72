// Decoder sampling: the token rule, the cache against the uncached windows of both window
// policies (past block_size), determinism, greedy decoding, stop strings and bad options.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "generate/models.h"
#include "qkv/autograd.h"
#include "qkv/error.h"
#include "qkv/generate.h"

using namespace qkv;
using namespace qkv::generate;
using qkv::testing::make_model;
using qkv::testing::text_vocab;
using qkv::testing::tiny_config;

namespace {

struct Run {
  Generation gen;
  std::vector<std::vector<float>> logits;  // per produced token
};

Run run(nn::DecoderModel& model, const data::Vocab& vocab, std::string_view prompt,
        SamplingOptions o, uint64_t seed) {
  Rng rng(seed);
  Run r;
  r.gen = sample(model, vocab, vocab.encode(prompt), o, rng, [&](const GeneratedToken& t) {
    r.logits.emplace_back(t.logits.begin(), t.logits.end());
  });
  return r;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  float worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

int32_t argmax(const std::vector<float>& v) {
  return int32_t(std::max_element(v.begin(), v.end()) - v.begin());
}

// The documented window, recomputed independently: the prompt's last block_size tokens; then,
// when a token must enter a full window, exact drops the oldest token (nanoGPT's
// idx[:, -block_size:]) and chunked keeps the last block_size/2 tokens (the new one included).
std::vector<float> reference_logits(nn::DecoderModel& model, WindowPolicy policy,
                                    const std::vector<int32_t>& all, int64_t prompt_len,
                                    int64_t step) {
  const int64_t block = model.config().block_size;
  int64_t len = std::min(prompt_len, block);
  for (int64_t i = 0; i < step; ++i)
    len = len < block ? len + 1 : policy == WindowPolicy::exact ? block : block / 2;
  const int64_t end = prompt_len + step;
  NoGradGuard no_grad;
  const Tensor logits =
      model.logits(std::span(all).subspan(size_t(end - len), size_t(len)), 1, len);
  const int64_t V = logits.size(2);
  return {logits.data() + (len - 1) * V, logits.data() + len * V};
}

}  // namespace

TEST_CASE("sample_token: temperature 0 is argmax, ties going to the lowest id") {
  Rng rng(1);
  const SamplingOptions greedy{.temperature = 0.0f};
  const std::vector<float> logits{0.5f, 2.0f, -1.0f, 2.0f};
  CHECK(sample_token(logits, greedy, rng) == 1);
  const Rng::State before = rng.state();
  sample_token(logits, greedy, rng);
  CHECK(rng.state().state == before.state);  // greedy draws nothing
}

TEST_CASE("sample_token: draws follow softmax(logits / temperature)") {
  // p(1) = 3/4 at temperature 1 and 9/10 at temperature 0.5 (exp(2·ln 3) = 9).
  const std::vector<float> logits{0.0f, std::log(3.0f)};
  for (auto [temperature, expected] : {std::pair{1.0f, 0.75}, std::pair{0.5f, 0.9}}) {
    CAPTURE(temperature);
    Rng rng(42);
    const SamplingOptions o{.temperature = temperature, .top_k = 0};
    int ones = 0;
    const int n = 20000;
    for (int i = 0; i < n; ++i) ones += sample_token(logits, o, rng);
    // 20000 draws: the standard error is about 0.003; 0.015 is five of them.
    CHECK(std::abs(double(ones) / n - expected) < 0.015);
  }
}

TEST_CASE("sample_token: top-k and top-p keep only the most likely tokens") {
  // Probabilities 0.5, 0.3, 0.2 (ids 2, 0, 1), and a fourth token of about 0.0001.
  const std::vector<float> logits{std::log(0.3f), std::log(0.2f), std::log(0.5f), std::log(1e-4f)};
  auto seen = [&](SamplingOptions o) {
    Rng rng(9);
    std::vector<int> counts(4, 0);
    for (int i = 0; i < 3000; ++i) ++counts[size_t(sample_token(logits, o, rng))];
    return counts;
  };
  std::vector<int> c = seen({.temperature = 1.0f, .top_k = 2});
  CHECK((c[2] > 0 && c[0] > 0 && c[1] == 0 && c[3] == 0));
  c = seen({.temperature = 1.0f, .top_k = 0, .top_p = 0.7f});  // 0.5 < 0.7 <= 0.5 + 0.3
  CHECK((c[2] > 0 && c[0] > 0 && c[1] == 0 && c[3] == 0));
  c = seen({.temperature = 1.0f, .top_k = 0, .top_p = 0.45f});
  CHECK(c[2] == 3000);
  c = seen({.temperature = 1.0f, .top_k = 0, .top_p = 0.95f});
  CHECK((c[2] > 0 && c[0] > 0 && c[1] > 0 && c[3] == 0));
}

namespace {

// The cached and uncached samples of both window policies, past block_size, against the
// windows recomputed from scratch.
void check_cache_past_window(const io::Config& config) {
  const data::Vocab vocab = text_vocab();
  auto model = make_model<nn::DecoderModel>(config, vocab, 3);
  const int64_t block = model->config().block_size;
  // block_size 16: 3 x 16 new tokens slide the window many times; the 40-character prompt is
  // cropped before the first token.
  for (WindowPolicy policy : {WindowPolicy::exact, WindowPolicy::chunked})
    for (std::string_view prompt : {"the cat", "the old king sees the moon. a dog eats br"}) {
      CAPTURE(enum_name(policy));
      CAPTURE(prompt);
      SamplingOptions o{
          .max_new_tokens = 3 * block, .temperature = 1.0f, .top_k = 0, .window = policy};
      const Run cached = run(*model, vocab, prompt, o, 5);
      o.use_cache = false;
      const Run uncached = run(*model, vocab, prompt, o, 5);
      REQUIRE(int64_t(cached.gen.tokens.size()) == 3 * block);
      CHECK(cached.gen.tokens == uncached.gen.tokens);
      CHECK(cached.gen.text == uncached.gen.text);

      std::vector<int32_t> all = vocab.encode(prompt);
      all.insert(all.end(), cached.gen.tokens.begin(), cached.gen.tokens.end());
      const auto P = int64_t(prompt.size());
      float worst_cache = 0, worst_window = 0;
      for (int64_t i = 0; i < 3 * block; ++i) {
        worst_cache = std::max(worst_cache, max_abs_diff(cached.logits[i], uncached.logits[i]));
        worst_window =
            std::max(worst_window,
                     max_abs_diff(uncached.logits[i], reference_logits(*model, policy, all, P, i)));
      }
      CHECK(worst_cache <= 1e-5f);
      CHECK(worst_window <= 1e-5f);
    }
}

}  // namespace

TEST_CASE("sample: the KV cache gives the uncached windows' tokens and logits, past block_size") {
  check_cache_past_window(tiny_config(nn::ModelKind::decoder));
}

TEST_CASE("sample: with rope and qk_norm, cached decoding equals uncached, past block_size") {
  io::Config c = tiny_config(nn::ModelKind::decoder);
  c.model.pos_encoding = nn::PosEncoding::rope;
  c.model.qk_norm = true;
  check_cache_past_window(c);
}

TEST_CASE("sample: past block_size, the two window policies give different text") {
  const data::Vocab vocab = text_vocab();
  auto model = make_model<nn::DecoderModel>(tiny_config(nn::ModelKind::decoder), vocab, 3);
  const int64_t block = model->config().block_size;
  SamplingOptions o{.max_new_tokens = 3 * block, .temperature = 1.0f, .top_k = 0};
  const std::vector<int32_t> exact = run(*model, vocab, "the cat", o, 1).gen.tokens;
  o.window = WindowPolicy::chunked;
  const std::vector<int32_t> chunked = run(*model, vocab, "the cat", o, 1).gen.tokens;
  // The windows are the same up to the first full one, the prompt's 7 tokens and 9 new ones:
  // the first 10 tokens agree.
  const auto same = size_t(block - 7 + 1);
  CHECK(std::equal(exact.begin(), exact.begin() + ptrdiff_t(same), chunked.begin()));
  CHECK(exact != chunked);
}

TEST_CASE("sample: the same seed gives the same text, another seed another text") {
  const data::Vocab vocab = text_vocab();
  auto model = make_model<nn::DecoderModel>(tiny_config(nn::ModelKind::decoder), vocab, 3);
  const SamplingOptions o{.max_new_tokens = 40, .temperature = 1.0f};
  const std::string a = run(*model, vocab, "a dog", o, 11).gen.text;
  CHECK(a.size() == 40);
  CHECK(run(*model, vocab, "a dog", o, 11).gen.text == a);
  CHECK(run(*model, vocab, "a dog", o, 12).gen.text != a);
}

TEST_CASE("sample: temperature 0, top-k 1 and a tiny top-p are all greedy and seed-free") {
  const data::Vocab vocab = text_vocab();
  auto model = make_model<nn::DecoderModel>(tiny_config(nn::ModelKind::decoder), vocab, 4);
  const Run greedy = run(*model, vocab, "my friend", {.max_new_tokens = 30, .temperature = 0}, 1);
  for (size_t i = 0; i < greedy.logits.size(); ++i)
    CHECK(greedy.gen.tokens[i] == argmax(greedy.logits[i]));
  CHECK(run(*model, vocab, "my friend", {.max_new_tokens = 30, .temperature = 0}, 2).gen.tokens ==
        greedy.gen.tokens);
  for (uint64_t seed : {1, 2, 3}) {
    CAPTURE(seed);
    const SamplingOptions top_k{.max_new_tokens = 30, .temperature = 1.0f, .top_k = 1};
    CHECK(run(*model, vocab, "my friend", top_k, seed).gen.tokens == greedy.gen.tokens);
    const SamplingOptions top_p{
        .max_new_tokens = 30, .temperature = 1.0f, .top_k = 0, .top_p = 1e-6f};
    CHECK(run(*model, vocab, "my friend", top_p, seed).gen.tokens == greedy.gen.tokens);
  }
}

TEST_CASE("sample: a stop string ends the sample right after its first appearance") {
  const data::Vocab vocab = text_vocab();
  auto model = make_model<nn::DecoderModel>(tiny_config(nn::ModelKind::decoder), vocab, 5);
  SamplingOptions o{.max_new_tokens = 50, .temperature = 1.0f};
  const std::string full = run(*model, vocab, "the", o, 8).gen.text;
  REQUIRE(full.size() == 50);
  const std::string stop = full.substr(20, 2);
  const size_t end = full.find(stop) + stop.size();
  o.stop = {"no such text", stop};
  int calls = 0;
  Rng rng(8);
  const Generation g =
      sample(*model, vocab, vocab.encode("the"), o, rng, [&](const GeneratedToken&) { ++calls; });
  CHECK(g.text == full.substr(0, end));
  CHECK(g.stop == stop);
  CHECK(calls == int(end));
  CHECK(run(*model, vocab, "the", {.max_new_tokens = 50, .temperature = 1.0f}, 8).gen.stop.empty());
}

TEST_CASE("sample: stops at max_new_tokens, none included") {
  const data::Vocab vocab = text_vocab();
  auto model = make_model<nn::DecoderModel>(tiny_config(nn::ModelKind::decoder), vocab, 3);
  const Run r = run(*model, vocab, "a", {.max_new_tokens = 3}, 1);
  CHECK(r.gen.tokens.size() == 3);
  CHECK(run(*model, vocab, "a", {.max_new_tokens = 0}, 1).gen.tokens.empty());
}

TEST_CASE("sample: bad options and inputs are errors that say what is wrong") {
  const data::Vocab vocab = text_vocab();
  auto model = make_model<nn::DecoderModel>(tiny_config(nn::ModelKind::decoder), vocab, 3);
  Rng rng(1);
  const std::vector<int32_t> prompt = vocab.encode("a");
  auto fails = [&](SamplingOptions o, const char* message) {
    CHECK_THROWS_WITH_AS(sample(*model, vocab, prompt, o, rng), message, Error);
  };
  fails({.top_p = 1.5f}, "sample: top-p = 1.5 is outside (0, 1] (1 keeps every token)");
  fails({.top_p = 0.0f}, "sample: top-p = 0 is outside (0, 1] (1 keeps every token)");
  fails({.temperature = -1.0f}, "sample: temperature = -1 must be a number >= 0 (0 means greedy)");
  fails({.temperature = NAN}, "sample: temperature = nan must be a number >= 0 (0 means greedy)");
  fails({.top_k = -2}, "sample: top-k = -2 is negative");
  fails({.max_new_tokens = -1}, "sample: max-new-tokens = -1 is negative");
  fails({.stop = {""}}, "sample: a stop string is empty");
  CHECK_THROWS_WITH_AS(sample(*model, vocab, {}, {}, rng),
                       "sample: the prompt is empty; give at least one character", Error);
  const data::Vocab other = data::Vocab::from_text("abc");
  CHECK_THROWS_WITH_AS(sample(*model, other, std::vector<int32_t>{0}, {}, rng),
                       doctest::Contains("the vocabulary has 3 symbols but the model was built"),
                       Error);
}
