// Looking inside: named_modules() finds the attention layers, and record_probabilities() hands
// out their probabilities without changing what the model computes.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "qkv/autograd.h"
#include "qkv/nn/models.h"

using namespace qkv;
using namespace qkv::nn;

namespace {

ModelConfig config(ModelKind kind) {
  return {.kind = kind,
          .vocab_size = 9,
          .n_layer = 2,
          .n_head = 2,
          .n_embd = 8,
          .block_size = 8,
          .bias = true};
}

std::vector<std::string> module_names(Module& m) {
  std::vector<std::string> out;
  for (const auto& [name, module] : m.named_modules()) out.push_back(name);
  return out;
}

template <class M>
M& module_named(Module& model, const std::string& name) {
  for (const auto& [n, m] : model.named_modules())
    if (n == name) {
      auto* typed = dynamic_cast<M*>(m);
      REQUIRE(typed != nullptr);
      return *typed;
    }
  FAIL("no module " << name);
  throw;
}

}  // namespace

TEST_CASE("named_modules: dotted names in registration order") {
  DecoderModel dec(config(ModelKind::decoder));
  const std::vector<std::string> names = module_names(dec);
  CHECK(names.front() == "tok_emb");
  CHECK(std::find(names.begin(), names.end(), "blocks.1.attn.qkv") != names.end());
  CHECK(std::find(names.begin(), names.end(), "blocks.0.attn") <
        std::find(names.begin(), names.end(), "blocks.1.attn"));
  EncoderDecoderModel ed(config(ModelKind::encoder_decoder));
  const std::vector<std::string> ed_names = module_names(ed);
  CHECK(std::find(ed_names.begin(), ed_names.end(), "encoder.blocks.1.attn") != ed_names.end());
  CHECK(std::find(ed_names.begin(), ed_names.end(), "decoder.blocks.0.cross_attn") !=
        ed_names.end());
}

TEST_CASE("record_probabilities: causal rows that sum to 1, the same logits, and off again") {
  DecoderModel dec(config(ModelKind::decoder));
  const std::vector<int32_t> ids{1, 4, 2, 8, 0};
  const int64_t T = 5;
  NoGradGuard no_grad;
  const std::vector<float> plain = dec.logits(ids, 1, T).to_vector();
  Tensor probs;
  auto& attn = module_named<MultiHeadAttention>(dec, "blocks.1.attn");
  attn.record_probabilities(&probs);
  CHECK(dec.logits(ids, 1, T).to_vector() == plain);
  REQUIRE(probs.shape() == Shape({1, 2, T, T}));
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t i = 0; i < T; ++i) {
      double sum = 0;
      for (int64_t j = 0; j < T; ++j) {
        const float p = probs.data()[(h * T + i) * T + j];
        if (j > i) CHECK(p == 0.0f);
        sum += p;
      }
      CHECK(sum == doctest::Approx(1.0).epsilon(1e-6));
    }
  attn.record_probabilities(nullptr);
  Tensor before = probs;
  const std::vector<int32_t> other{3, 3};
  dec.logits(other, 1, 2);
  CHECK(probs.shape() == before.shape());  // not overwritten by the [1, 2, 2, 2] of this forward
}

TEST_CASE("record_probabilities: cross-attention gives [B, NH, Tt, Ts] that ignore padding") {
  EncoderDecoderModel ed(config(ModelKind::encoder_decoder));
  Tensor probs;
  auto& cross = module_named<CrossAttention>(ed, "decoder.blocks.0.cross_attn");
  cross.record_probabilities(&probs);
  const std::vector<int32_t> src{1, 2, 3, 0, 5, 6, 0, 0}, tgt{7, 1, 2, 7, 3, 4};
  const Tensor pad = Tensor::from_vector({2, 4}, {0, 0, 0, 1, 0, 0, 1, 1});
  NoGradGuard no_grad;
  ed.logits(src, tgt, 2, 4, 3, pad);
  REQUIRE(probs.shape() == Shape({2, 2, 3, 4}));
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t i = 0; i < 3; ++i) {
        const float* row = probs.data() + ((b * 2 + h) * 3 + i) * 4;
        double sum = 0;
        for (int64_t j = 0; j < 4; ++j) {
          if (pad.data()[b * 4 + j] != 0) CHECK(row[j] == 0.0f);
          sum += row[j];
        }
        CHECK(sum == doctest::Approx(1.0).epsilon(1e-6));
      }
  cross.record_probabilities(nullptr);
}
