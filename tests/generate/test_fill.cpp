// Encoder fill: masked positions get the encoder's most likely characters, nothing else moves.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "generate/models.h"
#include "qkv/autograd.h"
#include "qkv/error.h"
#include "qkv/generate.h"
#include "qkv/ops.h"

using namespace qkv;
using namespace qkv::generate;

namespace {

struct Fixture {
  data::Vocab vocab = testing::mask_vocab();
  std::unique_ptr<nn::EncoderModel> model =
      testing::make_model<nn::EncoderModel>(testing::tiny_config(nn::ModelKind::encoder), vocab, 7);

  // Probabilities [T, V] for ids, computed directly.
  std::vector<float> probs(const std::vector<int32_t>& ids) {
    NoGradGuard no_grad;
    return softmax(model->logits(ids, 1, int64_t(ids.size()))).to_vector();
  }
};

}  // namespace

TEST_CASE("fill: masked positions get the most likely character, with ranked candidates") {
  Fixture f;
  const std::string text = "the c_t se_s _he";
  const Fill fill = fill_masks(*f.model, f.vocab, text, U'_', 3);
  REQUIRE(fill.text.size() == text.size());
  REQUIRE(fill.positions.size() == 3);

  std::vector<int32_t> ids = f.vocab.encode("the cat sees the");
  const int32_t mask = f.vocab.special_id(data::kMask);
  const int64_t masked[] = {5, 10, 13};
  for (int64_t i : masked) ids[size_t(i)] = mask;
  const std::vector<float> p = f.probs(ids);
  const int64_t V = f.vocab.size(), n_chars = f.vocab.num_chars();
  for (size_t k = 0; k < 3; ++k) {
    const FilledPosition& pos = fill.positions[k];
    CHECK(pos.position == masked[k]);
    REQUIRE(pos.candidates.size() == 3);
    const float* row = p.data() + pos.position * V;
    const auto best = int32_t(std::max_element(row, row + n_chars) - row);
    CHECK(pos.candidates[0].first == best);
    CHECK(fill.text[size_t(pos.position)] == char(f.vocab.chars()[size_t(best)]));
    for (size_t r = 0; r < 3; ++r) {
      CHECK(pos.candidates[r].first < n_chars);  // never <mask>
      CHECK(pos.candidates[r].second == doctest::Approx(row[pos.candidates[r].first]));
      if (r > 0) CHECK(pos.candidates[r].second <= pos.candidates[r - 1].second);
    }
  }
  for (size_t i = 0; i < text.size(); ++i)
    if (text[i] != '_') CHECK(fill.text[i] == text[i]);
}

TEST_CASE("fill: the mask character is configurable, even one the vocabulary holds") {
  Fixture f;
  const Fill fill = fill_masks(*f.model, f.vocab, "a red ball", U'e');
  REQUIRE(fill.positions.size() == 1);
  CHECK(fill.positions[0].position == 3);
  CHECK(fill.positions[0].candidates.size() == 1);
}

TEST_CASE("fill: bad inputs are errors that name the problem") {
  Fixture f;
  CHECK_THROWS_WITH_AS(fill_masks(*f.model, f.vocab, "the cat", U'_'),
                       "fill: the text has no mask character '_' (U+005F) to fill", Error);
  CHECK_THROWS_WITH_AS(fill_masks(*f.model, f.vocab, "the cat sees the fish_", U'_'),
                       "fill: the text has 22 characters, more than the model's block_size = 16",
                       Error);
  CHECK_THROWS_WITH_AS(fill_masks(*f.model, f.vocab, "a_Z", U'_'),
                       doctest::Contains("fill text: character 'Z' (U+005A) at position 2"), Error);
  CHECK_THROWS_WITH_AS(fill_masks(*f.model, f.vocab, "a_", U'_', 0),
                       "fill: top-k = 0 must be at least 1", Error);
}
