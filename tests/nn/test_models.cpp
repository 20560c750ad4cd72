// The three model kinds: parameter names and counts, init, modes, weight tying, config errors.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include "qkv/error.h"
#include "qkv/nn/models.h"
#include "qkv/ops.h"

using namespace qkv;
using namespace qkv::nn;

namespace {

ModelConfig small(ModelKind kind) {
  return {.kind = kind,
          .vocab_size = 11,
          .n_layer = 1,
          .n_head = 2,
          .n_embd = 8,
          .block_size = 8,
          .bias = true};
}

std::vector<std::string> names_of(const Module& m) {
  std::vector<std::string> out;
  for (const auto& [name, t] : m.named_parameters()) out.push_back(name);
  return out;
}

Tensor find(const Module& m, const std::string& name) {
  for (const auto& [n, t] : m.named_parameters())
    if (n == name) return t;
  FAIL("no parameter " << name);
  return {};
}

std::vector<int32_t> ids_for(int64_t n, int64_t vocab, int32_t salt = 0) {
  std::vector<int32_t> ids(n);
  for (int64_t i = 0; i < n; ++i) ids[i] = int32_t((i * 7 + salt * 3 + 1) % vocab);
  return ids;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("decoder: parameter names follow the spec, pre-LN with biases, learned, tied") {
  ModelConfig c = small(ModelKind::decoder);
  DecoderModel m(c);
  CHECK(names_of(m) ==
        std::vector<std::string>{
            "tok_emb.weight", "pos_emb.weight", "blocks.0.ln1.weight", "blocks.0.ln1.bias",
            "blocks.0.attn.qkv.weight", "blocks.0.attn.qkv.bias", "blocks.0.attn.proj.weight",
            "blocks.0.attn.proj.bias", "blocks.0.ln2.weight", "blocks.0.ln2.bias",
            "blocks.0.mlp.fc.weight", "blocks.0.mlp.fc.bias", "blocks.0.mlp.proj.weight",
            "blocks.0.mlp.proj.bias", "ln_f.weight", "ln_f.bias"});
  CHECK(find(m, "blocks.0.attn.qkv.weight").shape() == Shape{24, 8});
  CHECK(find(m, "blocks.0.mlp.fc.weight").shape() == Shape{32, 8});
  CHECK(find(m, "pos_emb.weight").shape() == Shape{8, 8});
  for (const auto& [name, p] : m.named_parameters()) CHECK(p.name() == name);
}

TEST_CASE("decoder: post-LN has no ln_f; sinusoidal positions are not parameters; untied head") {
  ModelConfig c = small(ModelKind::decoder);
  c.n_layer = 2;
  c.norm = Norm::post;
  c.pos_encoding = PosEncoding::sinusoidal;
  c.tie_weights = false;
  c.bias = false;
  DecoderModel m(c);
  const std::vector<std::string> names = names_of(m);
  CHECK(names == std::vector<std::string>{
                     "tok_emb.weight", "blocks.0.ln1.weight", "blocks.0.attn.qkv.weight",
                     "blocks.0.attn.proj.weight", "blocks.0.ln2.weight", "blocks.0.mlp.fc.weight",
                     "blocks.0.mlp.proj.weight", "blocks.1.ln1.weight", "blocks.1.attn.qkv.weight",
                     "blocks.1.attn.proj.weight", "blocks.1.ln2.weight", "blocks.1.mlp.fc.weight",
                     "blocks.1.mlp.proj.weight", "lm_head.weight"});
  CHECK(find(m, "lm_head.weight").shape() == Shape{11, 8});
}

TEST_CASE("encoder: parameter names follow the spec") {
  ModelConfig c = small(ModelKind::encoder);
  c.tie_weights = false;
  EncoderModel m(c);
  const std::vector<std::string> names = names_of(m);
  REQUIRE(names.size() == 17);
  CHECK(names.front() == "tok_emb.weight");
  CHECK(names[2] == "blocks.0.ln1.weight");
  CHECK(names[4] == "blocks.0.attn.qkv.weight");
  CHECK(names[14] == "ln_f.weight");
  CHECK(names.back() == "lm_head.weight");
}

TEST_CASE("encoder_decoder: parameter names follow the spec, with cross-attention") {
  ModelConfig c = small(ModelKind::encoder_decoder);
  c.bias = false;
  c.pos_encoding = PosEncoding::sinusoidal;
  c.tie_weights = false;
  EncoderDecoderModel m(c);
  CHECK(names_of(m) == std::vector<std::string>{"encoder.tok_emb.weight",
                                                "encoder.blocks.0.ln1.weight",
                                                "encoder.blocks.0.attn.qkv.weight",
                                                "encoder.blocks.0.attn.proj.weight",
                                                "encoder.blocks.0.ln2.weight",
                                                "encoder.blocks.0.mlp.fc.weight",
                                                "encoder.blocks.0.mlp.proj.weight",
                                                "encoder.ln_f.weight",
                                                "decoder.tok_emb.weight",
                                                "decoder.blocks.0.ln1.weight",
                                                "decoder.blocks.0.attn.qkv.weight",
                                                "decoder.blocks.0.attn.proj.weight",
                                                "decoder.blocks.0.ln_cross.weight",
                                                "decoder.blocks.0.cross_attn.q.weight",
                                                "decoder.blocks.0.cross_attn.kv.weight",
                                                "decoder.blocks.0.cross_attn.proj.weight",
                                                "decoder.blocks.0.ln2.weight",
                                                "decoder.blocks.0.mlp.fc.weight",
                                                "decoder.blocks.0.mlp.proj.weight",
                                                "decoder.ln_f.weight",
                                                "lm_head.weight"});
  CHECK(find(m, "decoder.blocks.0.cross_attn.kv.weight").shape() == Shape{16, 8});
}

TEST_CASE("decoder: the baby Shakespeare config has 804,096 parameters (nanoGPT: 0.80M)") {
  DecoderModel m({.vocab_size = 65,
                  .n_layer = 4,
                  .n_head = 4,
                  .n_embd = 128,
                  .block_size = 64,
                  .bias = false,
                  .tie_weights = true});
  const int64_t C = 128, F = 4 * C, V = 65, block = 64, L = 4;
  const int64_t per_layer =
      C /*ln1*/ + 3 * C * C /*qkv*/ + C * C /*proj*/ + C /*ln2*/ + C * F /*fc*/ + F * C /*proj*/;
  const int64_t expected = V * C /*tok_emb*/ + block * C /*pos_emb*/ + L * per_layer + C /*ln_f*/;
  CHECK(expected == 804096);
  CHECK(m.num_parameters() == expected);
  // nanoGPT prints the count without position embeddings: 795,904 = "0.80M".
  CHECK(m.num_parameters() - block * C == 795904);
}

TEST_CASE("models: init is GPT-2's and the same seed gives identical weights") {
  ModelConfig c = small(ModelKind::decoder);
  c.n_embd = 64;
  c.n_layer = 2;
  c.n_head = 4;
  DecoderModel a(c), b(c);
  c.seed += 1;
  DecoderModel other(c);
  NamedTensors pa = a.named_parameters(), pb = b.named_parameters(), po = other.named_parameters();
  bool any_differs = false;
  for (size_t i = 0; i < pa.size(); ++i) {
    CHECK(pa[i].second.to_vector() == pb[i].second.to_vector());
    any_differs |= pa[i].second.to_vector() != po[i].second.to_vector();
  }
  CHECK(any_differs);

  auto stddev = [](const Tensor& t) {
    double s = 0;
    for (float v : t.to_vector()) s += double(v) * v;
    return std::sqrt(s / double(t.numel()));
  };
  CHECK(stddev(find(a, "blocks.0.mlp.fc.weight")) == doctest::Approx(0.02).epsilon(0.05));
  const double proj = 0.02 / std::sqrt(2.0 * 2);
  CHECK(stddev(find(a, "blocks.1.mlp.proj.weight")) == doctest::Approx(proj).epsilon(0.05));
  CHECK(stddev(find(a, "blocks.0.attn.proj.weight")) == doctest::Approx(proj).epsilon(0.1));
  CHECK(find(a, "blocks.0.ln1.weight").to_vector() == std::vector<float>(64, 1.0f));
  CHECK(find(a, "blocks.0.ln1.bias").to_vector() == std::vector<float>(64, 0.0f));
  CHECK(find(a, "blocks.0.attn.qkv.bias").to_vector() == std::vector<float>(192, 0.0f));
}

TEST_CASE("models: dropout draws from the stream a forward is given; without one, none") {
  ModelConfig c = small(ModelKind::decoder);
  c.dropout = 0.5f;
  DecoderModel m(c);
  c.dropout = 0.0f;
  DecoderModel plain(c);
  const std::vector<int32_t> ids = ids_for(2 * 6, c.vocab_size);
  NoGradGuard no_grad;
  Rng dropout(5, 1);
  const std::vector<float> t1 = m.logits(ids, 2, 6, nullptr, 0, &dropout).to_vector();
  const std::vector<float> t2 = m.logits(ids, 2, 6, nullptr, 0, &dropout).to_vector();
  CHECK(t1 != t2);
  Rng same(5, 1);
  CHECK(m.logits(ids, 2, 6, nullptr, 0, &same).to_vector() == t1);  // masks come from the stream
  const std::vector<float> e1 = m.logits(ids, 2, 6).to_vector();
  CHECK(e1 == m.logits(ids, 2, 6).to_vector());
  CHECK(e1 == plain.logits(ids, 2, 6).to_vector());
  CHECK(e1 != t1);
}

TEST_CASE("decoder: tied weights get the gradient of both the embedding and the head") {
  // The tied gradient must equal an untied twin's tok_emb grad plus its lm_head grad.
  ModelConfig c = small(ModelKind::decoder);
  DecoderModel tied(c);
  c.tie_weights = false;
  DecoderModel untied(c);
  CHECK(names_of(tied).size() + 1 == names_of(untied).size());
  NamedTensors sd = tied.state_dict();
  sd.emplace_back("lm_head.weight", find(tied, "tok_emb.weight"));
  untied.load_state_dict(sd);

  const std::vector<int32_t> ids = ids_for(2 * 5, c.vocab_size), targets = ids_for(10, 11, 1);
  softmax_cross_entropy(tied.logits(ids, 2, 5), targets).backward();
  softmax_cross_entropy(untied.logits(ids, 2, 5), targets).backward();
  const std::vector<float> g = find(tied, "tok_emb.weight").grad().to_vector();
  const std::vector<float> ge = find(untied, "tok_emb.weight").grad().to_vector();
  const std::vector<float> gh = find(untied, "lm_head.weight").grad().to_vector();
  REQUIRE(g.size() == ge.size());
  bool both_used = false;
  for (size_t i = 0; i < g.size(); ++i) {
    CHECK(g[i] == doctest::Approx(ge[i] + gh[i]).epsilon(1e-5));
    both_used |= ge[i] != 0.0f && gh[i] != 0.0f;
  }
  CHECK(both_used);
}

TEST_CASE("models: config errors name the key") {
  ModelConfig c = small(ModelKind::decoder);
  c.n_embd = 130;
  c.n_head = 6;
  CHECK(error_of([&] { DecoderModel m(c); }) ==
        "model.n_embd = 130 is not divisible by model.n_head = 6");
  c = small(ModelKind::decoder);
  c.dropout = 1.0f;
  CHECK(error_of([&] { c.validate(); }) == "model.dropout = 1 is not in [0, 1)");
  c = small(ModelKind::decoder);
  c.vocab_size = 0;
  CHECK(error_of([&] { c.validate(); }) == "model.vocab_size = 0 must be positive");
  c = small(ModelKind::decoder);
  c.n_embd = 9;
  c.n_head = 3;
  c.pos_encoding = PosEncoding::sinusoidal;
  CHECK(error_of([&] { c.validate(); }).find("must be even") != std::string::npos);
  CHECK(error_of([&] { EncoderModel m(small(ModelKind::decoder)); }) ==
        "EncoderModel: model.kind is 'decoder', expected 'encoder'");
}

TEST_CASE("models: a sequence longer than block_size is a clear error") {
  ModelConfig c = small(ModelKind::decoder);
  DecoderModel d(c);
  const std::vector<int32_t> ids = ids_for(9, c.vocab_size);
  CHECK(error_of([&] {
          d.logits(ids, 1, 9);
        }).starts_with("decoder: positions 0..8 exceed block_size 8"));
  CHECK(error_of([&] { d.logits(ids, 2, 4); }) ==
        "decoder: 9 ids do not form a batch of B = 2 sequences of T = 4");
  c.kind = ModelKind::encoder;
  EncoderModel e(c);
  CHECK(error_of([&] { e.logits(ids, 1, 9); }) ==
        "encoder: sequence of T = 9 exceeds block_size 8");
}

TEST_CASE("encoder: padding keys do not change the outputs of real positions") {
  ModelConfig c = small(ModelKind::encoder);
  EncoderModel m(c);
  NoGradGuard no_grad;
  std::vector<int32_t> a = ids_for(6, c.vocab_size), b = a;
  b[4] = (b[4] + 1) % 11;  // positions 4 and 5 are padding
  b[5] = (b[5] + 3) % 11;
  Tensor pad = Tensor::from_vector({1, 6}, {0, 0, 0, 0, 1, 1});
  const Tensor la = m.logits(a, 1, 6, pad), lb = m.logits(b, 1, 6, pad);
  for (int64_t i = 0; i < 4 * 11; ++i) CHECK(la.data()[i] == doctest::Approx(lb.data()[i]));
  const Tensor lc = m.logits(b, 1, 6);  // without the mask the change is visible
  bool differs = false;
  for (int64_t i = 0; i < 4 * 11; ++i) differs |= std::abs(la.data()[i] - lc.data()[i]) > 1e-4f;
  CHECK(differs);
}
