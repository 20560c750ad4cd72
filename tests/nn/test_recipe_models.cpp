// The modern recipe's model options (issue 23) in the three model kinds: parameter names and
// shapes, the init they change, and the config errors they bring.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "qkv/error.h"
#include "qkv/nn/models.h"

using namespace qkv;
using namespace qkv::nn;

namespace {

ModelConfig recipe(ModelKind kind) {
  return {.kind = kind,
          .vocab_size = 11,
          .n_layer = 1,
          .n_head = 2,
          .n_embd = 16,
          .block_size = 8,
          .bias = true,
          .pos_encoding = PosEncoding::rope,
          .norm_type = NormType::rmsnorm,
          .qk_norm = true,
          .activation = Activation::swiglu,
          .zero_init_proj = true};
}

std::vector<std::string> names_of(const Module& m) {
  std::vector<std::string> out;
  for (const auto& [name, t] : m.named_parameters()) out.push_back(name);
  return out;
}

}  // namespace

TEST_CASE("recipe: rope has no pos_emb, RMSNorm no bias, SwiGLU a gate between fc and proj") {
  DecoderModel m(recipe(ModelKind::decoder));
  CHECK(names_of(m) == std::vector<std::string>{
                           "tok_emb.weight", "blocks.0.ln1.weight", "blocks.0.attn.qkv.weight",
                           "blocks.0.attn.qkv.bias", "blocks.0.attn.proj.weight",
                           "blocks.0.attn.proj.bias", "blocks.0.ln2.weight",
                           "blocks.0.mlp.fc.weight", "blocks.0.mlp.fc.bias",
                           "blocks.0.mlp.gate.weight", "blocks.0.mlp.gate.bias",
                           "blocks.0.mlp.proj.weight", "blocks.0.mlp.proj.bias", "ln_f.weight"});
  // 8/3 · 16 rounded up to a multiple of 64.
  for (const auto& [name, t] : m.named_parameters())
    if (name.ends_with("mlp.gate.weight") || name.ends_with("mlp.fc.weight"))
      CHECK(t.shape() == Shape{64, 16});
  CHECK(m.config().ffn() == 64);
}

TEST_CASE("recipe: zero_init_proj starts every output projection at zero, and nothing else") {
  EncoderDecoderModel m(recipe(ModelKind::encoder_decoder));
  int zeroed = 0;
  for (const auto& [name, t] : m.named_parameters()) {
    bool all_zero = true;
    for (float v : t.to_vector()) all_zero = all_zero && v == 0.0f;
    const bool proj = name.ends_with("proj.weight");
    if (name.ends_with(".weight") && !name.ends_with("ln1.weight") &&
        !name.ends_with("ln2.weight") && !name.ends_with("ln_cross.weight") &&
        !name.ends_with("ln_f.weight"))
      CHECK_MESSAGE(all_zero == proj, name);
    zeroed += proj && all_zero;
  }
  CHECK(zeroed == 5);  // encoder attn and mlp; decoder attn, cross_attn and mlp
}

TEST_CASE("recipe: every model kind runs with every option on") {
  // One forward of each kind with every option on runs and gives finite logits of the right
  // shape; the parity fixtures (test_parity.cpp) pin the values.
  NoGradGuard no_grad;
  const std::vector<int32_t> ids = {1, 2, 3, 4, 5, 6};
  const Tensor d = DecoderModel(recipe(ModelKind::decoder)).logits(ids, 2, 3);
  const Tensor e = EncoderModel(recipe(ModelKind::encoder)).logits(ids, 1, 6);
  const Tensor ed = EncoderDecoderModel(recipe(ModelKind::encoder_decoder)).logits(ids, ids, 1, 6, 6);
  CHECK(d.shape() == Shape{2, 3, 11});
  CHECK(e.shape() == Shape{1, 6, 11});
  CHECK(ed.shape() == Shape{1, 6, 11});
}

TEST_CASE("recipe: an odd head size with rope, and rope_base <= 1, are errors naming the key") {
  ModelConfig c = recipe(ModelKind::decoder);
  c.n_embd = 18, c.n_head = 2;  // head size 9
  CHECK_THROWS_WITH_AS(DecoderModel{c}, doctest::Contains("model.pos_encoding = \"rope\""), Error);
  c = recipe(ModelKind::decoder);
  c.rope_base = 1.0;
  CHECK_THROWS_WITH_AS(DecoderModel{c}, "model.rope_base = 1 must be greater than 1", Error);
}
