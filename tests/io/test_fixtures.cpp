// The parity fixtures written by tests/fixtures/make_fixtures.py read back with the C++ reader:
// names, dtypes and shapes as MODULES_SPEC.md lists them, and checksums that match the weight
// formula in the order the grads are stored (named_parameters order).
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "qkv/io/safetensors.h"
#include "qkv/nn/model_config.h"

using namespace qkv;
using namespace qkv::io;
using nn::ModelKind;

namespace {

struct Case {
  const char* name;
  ModelKind kind;
  int64_t n_params;
  bool tied;
  bool adamw;
};

constexpr int64_t kB = 2, kT = 7, kTs = 5, kV = 11, kC = 32, kF = 128;

void check_ints(const SafetensorsContents& f, const std::string& name, Shape shape, int lo,
                int hi) {
  CAPTURE(name);
  REQUIRE(f.int_tensors.count(name) == 1);
  const IntTensor& t = f.int_tensors.at(name);
  CHECK(t.shape == shape);
  for (int32_t v : t.values) CHECK((v >= lo && v <= hi));
}

void check_shape(const SafetensorsContents& f, const std::string& name, Shape shape) {
  CAPTURE(name);
  const Tensor* t = f.find(name);
  REQUIRE(t != nullptr);
  CHECK(t->shape() == shape);
}

// The spec's fill: base + 0.1 sin(0.37 i + 1.3 k + 0.5) in double, rounded to float, summed.
double formula_sum(const std::string& name, int64_t k, int64_t numel) {
  bool ln = false;
  for (const char* s : {"ln1.weight", "ln2.weight", "ln_cross.weight", "ln_f.weight"})
    ln = ln || name.ends_with(s);
  double sum = 0;
  for (int64_t i = 0; i < numel; ++i)
    sum += static_cast<float>((ln ? 1.0 : 0.0) + 0.1 * std::sin(0.37 * i + 1.3 * k + 0.5));
  return sum;
}

}  // namespace

TEST_CASE("fixtures: every parity fixture holds the tensors the spec lists") {
  const Case cases[] = {
      {"decoder_learned_pre_tied", ModelKind::decoder, 28, true, true},
      {"decoder_sinusoidal_post_untied", ModelKind::decoder, 14, false, false},
      {"encoder_learned_pre_padding", ModelKind::encoder, 28, true, false},
      {"encdec_sinusoidal_pre", ModelKind::encoder_decoder, 37, false, false},
      {"encdec_learned_post", ModelKind::encoder_decoder, 68, true, false},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    const SafetensorsContents f = read_safetensors(std::string(QKV_SOURCE_DIR) +
                                                   "/tests/fixtures/" + c.name + ".safetensors");
    CHECK(f.metadata.at("kind") == enum_name(c.kind));
    CHECK(f.metadata.at("tie_weights") == (c.tied ? "true" : "false"));
    for (const char* key : {"pos_encoding", "norm", "bias"}) CHECK(f.metadata.count(key) == 1);

    const std::string prefix = c.kind == ModelKind::encoder_decoder ? "decoder." : "";
    if (c.kind == ModelKind::encoder_decoder) {
      check_ints(f, "src_ids", {kB, kTs}, 0, kV - 1);
      check_ints(f, "src_padding", {kB, kTs}, 0, 1);
      check_ints(f, "tgt_ids", {kB, kT}, 0, kV - 1);
    } else {
      check_ints(f, "ids", {kB, kT}, 0, kV - 1);
      if (c.kind == ModelKind::encoder) check_ints(f, "src_padding", {kB, kT}, 0, 1);
    }
    check_ints(f, "targets", {kB, kT}, -1, kV - 1);
    check_shape(f, "logits", {kB, kT, kV});
    check_shape(f, "loss", {1});
    CHECK(std::isfinite(f.find("loss")->item()));

    check_shape(f, "grad." + prefix + "tok_emb.weight", {kV, kC});
    check_shape(f, "grad." + prefix + "blocks.0.attn.qkv.weight", {3 * kC, kC});
    check_shape(f, "grad." + prefix + "blocks.1.mlp.fc.weight", {kF, kC});
    CHECK((f.find("grad.lm_head.weight") != nullptr) == !c.tied);

    int64_t k = 0;
    for (const auto& [name, grad] : f.tensors) {
      if (!name.starts_with("grad.")) continue;
      const std::string param = name.substr(5);
      CAPTURE(param);
      check_shape(f, "checksum." + param, {1});
      CHECK(f.find("checksum." + param)->item() ==
            doctest::Approx(formula_sum(param, k, grad.numel())).epsilon(1e-6));
      if (c.adamw) check_shape(f, "adamw." + param, grad.shape());
      ++k;
    }
    CHECK(k == c.n_params);
    int64_t n_adamw = 0;
    for (const auto& [name, t] : f.tensors) n_adamw += name.starts_with("adamw.");
    CHECK(n_adamw == (c.adamw ? c.n_params : 0));
  }
}
