// translate: beam search on an EncoderDecoderModel, against an exhaustive search over every
// output of random models, where the KV cache must not change the result.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "beam_oracle.h"
#include "generate/models.h"
#include "qkv/autograd.h"
#include "qkv/error.h"
#include "qkv/generate.h"
#include "qkv/ops.h"

using namespace qkv;
using namespace qkv::generate;
using namespace qkv::testing::beam;

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
