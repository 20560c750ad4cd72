// Parity with PyTorch (tests/fixtures/make_fixtures.py, per MODULES_SPEC.md): for every fixture
// case, fill the model's parameters by the spec's formula, run forward + cross-entropy +
// backward, and compare logits, loss and every parameter gradient with the stored ones.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "qkv/io/safetensors.h"
#include "qkv/nn/models.h"
#include "qkv/ops.h"
#include "qkv/optim/adamw.h"

using namespace qkv;
using namespace qkv::nn;

namespace {

// |ours - torch| <= kAtol + kRtol·|torch|. Both sides compute in float32; reorderings of sums
// differ by ~1e-7 relative. The absolute floor covers gradients that are sums of cancelling
// terms and end near zero. A wrong formula or mask is off by far more. Do not loosen.
constexpr double kRtol = 1e-5, kAtol = 1e-6;

struct Diff {
  double max_abs = 0, max_ratio = 0;  // ratio = error / allowed error; <= 1 passes
  void add(const Diff& d) {
    max_abs = std::max(max_abs, d.max_abs);
    max_ratio = std::max(max_ratio, d.max_ratio);
  }
};

Diff compare(const std::string& what, const Tensor& ours, const Tensor& ref) {
  REQUIRE_MESSAGE(ours.defined(), what << ": no value on our side");
  REQUIRE_MESSAGE(ours.numel() == ref.numel(),
                  what << ": " << ours.shape().str() << " vs torch " << ref.shape().str());
  Diff d;
  int64_t worst = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    const double a = ours.data()[i], b = ref.data()[i], err = std::abs(a - b);
    const double ratio = err / (kAtol + kRtol * std::abs(b));
    if (ratio > d.max_ratio) worst = i;
    d.max_abs = std::max(d.max_abs, err);
    d.max_ratio = std::max(d.max_ratio, ratio);
  }
  CHECK_MESSAGE(d.max_ratio <= 1.0, what << "[" << worst << "]: ours " << ours.data()[worst]
                                         << ", torch " << ref.data()[worst]);
  return d;
}

// The spec's fill: value(i) = base + 0.1·sin(0.37·i + 1.3·k + 0.5), in double, then float.
// With zero_init_proj, the output projections keep the zeros the model starts with (checked).
Tensor spec_fill(const std::string& name, const Tensor& initial, int64_t k, bool zero_init_proj) {
  if (zero_init_proj && name.ends_with("proj.weight")) {
    for (float v : initial.to_vector()) REQUIRE_MESSAGE(v == 0.0f, name << " does not start at 0");
    return Tensor::zeros(initial.shape());
  }
  const Shape shape = initial.shape();
  const bool ln_weight = name.ends_with("ln1.weight") || name.ends_with("ln2.weight") ||
                         name.ends_with("ln_cross.weight") || name.ends_with("ln_f.weight");
  const double base = ln_weight ? 1.0 : 0.0;
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i)
    t.data()[i] = float(base + 0.1 * std::sin(0.37 * double(i) + 1.3 * double(k) + 0.5));
  return t;
}

// Metadata values are written by make_fixtures.py (see tests/fixtures/README.md).
std::string meta_value(const std::map<std::string, std::string>& meta, const std::string& key,
                       std::initializer_list<const char*> allowed) {
  const std::string& v = meta.at(key);
  bool ok = false;
  for (const char* a : allowed) ok |= v == a;
  REQUIRE_MESSAGE(ok, "fixture metadata " << key << " = '" << v << "'");
  return v;
}

// The same for a value in the config file's names (kind, pos_encoding, norm, ...); `fallback`
// for a key the fixture leaves out (the ones before issue 23's options).
template <class E>
E meta_enum(const std::map<std::string, std::string>& meta, const std::string& key,
            E fallback = E{}) {
  if (!meta.contains(key)) return fallback;
  const std::optional<E> v = parse_enum<E>(meta.at(key));
  REQUIRE_MESSAGE(v, "fixture metadata " << key << " = '" << meta.at(key) << "'");
  return *v;
}

Tensor padding_tensor(const io::IntTensor& p) {
  Tensor t = Tensor::empty(p.shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = float(p.values[i]);
  return t;
}

void run_case(const std::string& name) {
  CAPTURE(name);
  const io::SafetensorsContents f = io::read_safetensors(
      std::string(QKV_SOURCE_DIR) + "/tests/fixtures/" + name + ".safetensors");
  const auto& meta = f.metadata;
  // The first five fixtures have n_embd 32 and an MLP of 128 and leave their dims out.
  auto number = [&](const char* key, double fallback) {
    return meta.contains(key) ? std::stod(meta.at(key)) : fallback;
  };
  auto flag = [&](const char* key) {
    return meta.contains(key) && meta_value(meta, key, {"true", "false"}) == "true";
  };
  ModelConfig c{.kind = meta_enum<ModelKind>(meta, "kind"),
                .vocab_size = 11,
                .n_layer = int64_t(number("n_layer", 2)),
                .n_head = int64_t(number("n_head", 2)),
                .n_embd = int64_t(number("n_embd", 32)),
                .block_size = 8,
                .dropout = 0.0f,
                .pos_encoding = meta_enum<PosEncoding>(meta, "pos_encoding"),
                .norm = meta_enum<Norm>(meta, "norm"),
                .ffn_hidden = int64_t(number("ffn_hidden", 128)),
                .rope_base = number("rope_base", 10000.0),
                .norm_type = meta_enum<NormType>(meta, "norm_type"),
                .qk_norm = flag("qk_norm"),
                .activation = meta_enum<Activation>(meta, "activation"),
                .zero_init_proj = flag("zero_init_proj")};
  c.bias = meta_value(meta, "bias", {"true", "false"}) == "true";
  c.tie_weights = meta_value(meta, "tie_weights", {"true", "false"}) == "true";

  std::unique_ptr<Module> model;
  std::function<Tensor()> forward;
  const auto& ints = f.int_tensors;
  if (c.kind == ModelKind::decoder) {
    auto m = std::make_unique<DecoderModel>(c);
    const io::IntTensor& ids = ints.at("ids");
    forward = [m = m.get(), &ids] { return m->logits(ids.values, ids.shape[0], ids.shape[1]); };
    model = std::move(m);
  } else if (c.kind == ModelKind::encoder) {
    auto m = std::make_unique<EncoderModel>(c);
    const io::IntTensor& ids = ints.at("ids");
    const Tensor pad = padding_tensor(ints.at("src_padding"));
    forward = [m = m.get(), &ids, pad] {
      return m->logits(ids.values, ids.shape[0], ids.shape[1], pad);
    };
    model = std::move(m);
  } else {
    auto m = std::make_unique<EncoderDecoderModel>(c);
    const io::IntTensor &src = ints.at("src_ids"), &tgt = ints.at("tgt_ids");
    const Tensor pad = padding_tensor(ints.at("src_padding"));
    forward = [m = m.get(), &src, &tgt, pad] {
      return m->logits(src.values, tgt.values, src.shape[0], src.shape[1], tgt.shape[1], pad);
    };
    model = std::move(m);
  }

  // Fill by the formula, check it against torch's checksums, and load through load_state_dict.
  const NamedTensors params = model->named_parameters();
  NamedTensors dict;
  for (size_t k = 0; k < params.size(); ++k) {
    const auto& [pname, p] = params[k];
    Tensor t = spec_fill(pname, p, int64_t(k), c.zero_init_proj);
    const Tensor* sum = f.find("checksum." + pname);
    REQUIRE_MESSAGE(sum, "fixture has no checksum." << pname);
    double ours = 0;
    for (float v : t.to_vector()) ours += v;
    // The fixture stores the float64 sum rounded to float32: agree to that rounding. One wrong
    // value (or a shifted k) moves the sum by ~0.1.
    CHECK_MESSAGE(std::abs(ours - sum->item()) <= 1e-6 * std::max(1.0, std::abs(ours)),
                  "checksum." << pname << ": ours " << ours << ", torch " << sum->item());
    dict.emplace_back(pname, t);
  }
  model->load_state_dict(dict);

  // The fixture stores grad.* in torch's named_parameters order: it must be ours.
  std::vector<std::string> torch_order;
  for (const auto& [tname, t] : f.tensors)
    if (tname.starts_with("grad.")) torch_order.push_back(tname.substr(5));
  std::vector<std::string> our_order;
  for (const auto& [pname, p] : params) our_order.push_back(pname);
  CHECK(our_order == torch_order);

  const io::IntTensor& targets = ints.at("targets");
  Tensor logits = forward();
  Tensor loss = softmax_cross_entropy(logits, targets.values, -1);
  loss.backward();

  Diff out = compare("logits", logits, *f.find("logits"));
  out.add(compare("loss", loss, *f.find("loss")));
  Diff grads;
  for (const auto& [pname, p] : params) {
    const Tensor* ref = f.find("grad." + pname);
    REQUIRE_MESSAGE(ref, "fixture has no grad." << pname);
    grads.add(compare("grad." + pname, p.grad(), *ref));
  }
  MESSAGE(name << ": logits/loss max abs err " << out.max_abs << " (" << out.max_ratio
               << " of bound), grads max abs err " << grads.max_abs << " (" << grads.max_ratio
               << " of bound)");

  // Fixtures with adamw.* hold every parameter after one torch.optim.AdamW step from these
  // gradients: lr 1e-3, betas (0.9, 0.99), eps 1e-8, weight decay 0.1 on rank >= 2 tensors.
  // The step starts from torch's gradients, not ours: where a gradient is rounding noise (the
  // key bias's is exactly zero in exact arithmetic), Adam's first step, lr·g/(|g| + eps),
  // amplifies a 1e-9 difference to a visible one. Gradient parity is checked above.
  if (!f.find("adamw." + params.front().first)) return;
  for (const auto& [pname, p] : params) {
    p.zero_grad();
    p.backward(*f.find("grad." + pname));
  }
  optim::AdamW opt(params, {.beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f, .weight_decay = 0.1f});
  opt.step(1e-3f);
  Diff step;
  for (const auto& [pname, p] : params) {
    const Tensor* ref = f.find("adamw." + pname);
    REQUIRE_MESSAGE(ref, "fixture has no adamw." << pname);
    step.add(compare("adamw." + pname, p, *ref));
  }
  MESSAGE(name << ": parameters after one AdamW step, max abs err " << step.max_abs << " ("
               << step.max_ratio << " of bound)");
}

}  // namespace

TEST_CASE("parity: decoder, learned positions, pre-LN, tied, with biases") {
  run_case("decoder_learned_pre_tied");
}
TEST_CASE("parity: decoder, sinusoidal positions, post-LN, untied, no biases") {
  run_case("decoder_sinusoidal_post_untied");
}
TEST_CASE("parity: encoder, learned positions, pre-LN, padding and ignored targets") {
  run_case("encoder_learned_pre_padding");
}
TEST_CASE("parity: encoder-decoder, sinusoidal positions, pre-LN, source padding") {
  run_case("encdec_sinusoidal_pre");
}
TEST_CASE("parity: encoder-decoder, learned positions, post-LN, tied, source padding") {
  run_case("encdec_learned_post");
}
TEST_CASE("parity: decoder, rope, RMSNorm, qk_norm, SwiGLU, biases (none on the norms)") {
  run_case("decoder_rope_rms_qknorm_swiglu");
}
TEST_CASE("parity: decoder, rope with base 500, relu2, zero-initialised projections, untied") {
  run_case("decoder_rope_relu2_zero_init");
}
TEST_CASE("parity: encoder, rope, post-LN, qk_norm, SwiGLU, padding") {
  run_case("encoder_rope_swiglu_padding");
}
TEST_CASE("parity: encoder-decoder, rope, post-RMSNorm, qk_norm in self- and cross-attention, relu2") {
  run_case("encdec_rope_relu2_rms_qknorm");
}
