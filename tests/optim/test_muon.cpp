// Muon and its Newton–Schulz iteration: against bench/ref_optim.py (tests/fixtures/
// muon_steps.safetensors, written by make_muon_fixture.py), orthogonality, which parameters it
// takes, and its state.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "qkv/error.h"
#include "qkv/io/safetensors.h"
#include "qkv/nn/models.h"
#include "qkv/optim/newton_schulz.h"
#include "qkv/optim/optimizer.h"
#include "qkv/optim/schedule.h"
#include "qkv/rng.h"
#include "qkv/runtime.h"

using namespace qkv;
using namespace qkv::optim;

namespace {

bool bf16_here() { return bf16_support(std::getenv("QKV_CPU_BF16")).usable; }

std::vector<Precision> precisions() {
  std::vector<Precision> p{Precision::fp32};
  if (bf16_here()) p.push_back(Precision::bf16);
  return p;
}

Tensor copy_of(const Tensor& t, bool requires_grad = false) {
  Tensor c = Tensor::empty(t.shape());
  c.copy_from(t);
  c.set_requires_grad(requires_grad);
  return c;
}

void set_grad(const Tensor& p, const Tensor& g) {
  p.zero_grad();
  p.set_grad(copy_of(g));
}

// The eigenvalues of the symmetric S [n, n] (cyclic Jacobi rotations, in double).
std::vector<double> symmetric_eigenvalues(std::vector<double> S, int64_t n) {
  for (int sweep = 0; sweep < 50; ++sweep) {
    double off = 0;
    for (int64_t p = 0; p < n; ++p)
      for (int64_t q = p + 1; q < n; ++q) off += S[p * n + q] * S[p * n + q];
    if (off < 1e-22) break;
    for (int64_t p = 0; p < n; ++p)
      for (int64_t q = p + 1; q < n; ++q) {
        if (std::abs(S[p * n + q]) < 1e-300) continue;
        const double theta = (S[q * n + q] - S[p * n + p]) / (2 * S[p * n + q]);
        const double t = (theta >= 0 ? 1 : -1) / (std::abs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1), s = t * c;
        for (int64_t k = 0; k < n; ++k) {  // columns p, q
          const double a = S[k * n + p], b = S[k * n + q];
          S[k * n + p] = c * a - s * b;
          S[k * n + q] = s * a + c * b;
        }
        for (int64_t k = 0; k < n; ++k) {  // rows p, q
          const double a = S[p * n + k], b = S[q * n + k];
          S[p * n + k] = c * a - s * b;
          S[q * n + k] = s * a + c * b;
        }
      }
  }
  std::vector<double> d;
  for (int64_t i = 0; i < n; ++i) d.push_back(S[i * n + i]);
  return d;
}

// The singular values of O [rows, cols]: square roots of the eigenvalues of the smaller Gram.
std::vector<double> singular_values(const std::vector<float>& O, int64_t rows, int64_t cols) {
  const bool tall = rows > cols;
  const int64_t n = tall ? cols : rows, m = tall ? rows : cols;
  auto at = [&](int64_t i, int64_t k) { return double(tall ? O[k * cols + i] : O[i * cols + k]); };
  std::vector<double> S(n * n, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t k = 0; k < m; ++k) S[i * n + j] += at(i, k) * at(j, k);
  std::vector<double> sv = symmetric_eigenvalues(S, n);
  for (double& s : sv) s = std::sqrt(std::max(0.0, s));
  return sv;
}

// The largest |a - b| over the elements of two tensors of one shape.
double max_difference(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  double d = 0;
  for (int64_t i = 0; i < a.numel(); ++i)
    d = std::max(d, std::abs(double(std::as_const(a).data()[i]) - std::as_const(b).data()[i]));
  return d;
}

// |a - b|_F / |b - init|_F: how far a is from b, as a share of how far b moved from init.
double relative_difference(const Tensor& a, const Tensor& b, const Tensor& init) {
  REQUIRE(a.shape() == b.shape());
  double num = 0, den = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double x = std::as_const(a).data()[i], y = std::as_const(b).data()[i];
    num += (x - y) * (x - y);
    den += (y - std::as_const(init).data()[i]) * (y - std::as_const(init).data()[i]);
  }
  return std::sqrt(num / den);
}

}  // namespace

TEST_CASE("newton_schulz: the result's singular values lie in a band around 1") {
  // Five quintic steps take every singular value of G/|G|_F that is not tiny into about
  // [0.68, 1.14] (fp32; bf16's roundings widen it to about [0.63, 1.16]: PyTorch's own, for
  // these shapes). Random rectangular matrices keep their smallest singular value away from 0.
  Rng rng(5);
  for (const auto& [rows, cols] : {std::pair{32, 96}, std::pair{96, 32}, std::pair{16, 64}}) {
    for (const Precision precision : precisions()) {
      CAPTURE(rows);
      CAPTURE(cols);
      CAPTURE(enum_name(precision));
      const Tensor G = Tensor::randn({rows, cols}, rng);
      std::vector<float> O(size_t(rows * cols)), scratch(size_t(newton_schulz_scratch(rows, cols)));
      newton_schulz(std::as_const(G).data(), O.data(), rows, cols, precision, scratch.data());
      const std::vector<double> sv = singular_values(O, rows, cols);
      const auto [lo, hi] = std::minmax_element(sv.begin(), sv.end());
      CHECK(*lo > (precision == Precision::bf16 ? 0.6 : 0.65));
      CHECK(*hi < 1.2);
      // The iteration starts from G / |G|_F: scaling G by a power of two, which rounds
      // nothing, changes no bit of the result.
      const Tensor G1024 = mul_scalar(G, 1024.0f);
      std::vector<float> O1024(O.size());
      newton_schulz(std::as_const(G1024).data(), O1024.data(), rows, cols, precision,
                    scratch.data());
      CHECK(O1024 == O);
    }
  }
}

TEST_CASE("muon: three steps match bench/ref_optim.py's, in fp32 and in bf16") {
  const io::SafetensorsContents f =
      io::read_safetensors(QKV_SOURCE_DIR "/tests/fixtures/muon_steps.safetensors");
  auto meta = [&](const std::string& key) { return std::stod(f.metadata.at(key)); };
  const ScheduleConfig schedule{.lr = float(meta("optim.lr")),
                                .min_lr = float(meta("optim.min_lr")),
                                .decay = Decay::wsd,
                                .warmup_iters = int64_t(meta("schedule.warmup_iters")),
                                .lr_decay_iters = int64_t(meta("schedule.lr_decay_iters")),
                                .decay_fraction = meta("schedule.decay_fraction")};
  REQUIRE(f.metadata.at("iters") == "0,1,3");
  // Tolerances, as |qkv - torch|_F / |torch - init|_F per weight after the three steps (weights
  // move by up to 0.026). fp32: 1e-5; measured 7e-7, the GEMMs' summation orders. bf16: 0.12;
  // measured 0.054-0.066. Newton-Schulz in bf16 is that far from any other rounding of itself:
  // each step's a·X and B·X nearly cancel, so a product that rounds its last bit the other way
  // (oneDNN's summation order is not PyTorch's) moves the update by several percent, and
  // PyTorch's own bf16 result is 0.044-0.061 from its fp32 one. A wrong split, orientation, scale
  // or momentum order moves the update by its whole size (1 and more).
  std::map<Precision, NamedTensors> trained;
  for (const Precision precision : precisions()) {
    const std::string prefix = precision == Precision::bf16 ? "bf16." : "fp32.";
    const double tolerance = precision == Precision::bf16 ? 0.12 : 1e-5;
    CAPTURE(prefix);
    NamedTensors& params = trained[precision];
    for (const auto& [name, t] : f.tensors)
      if (name.starts_with("init.")) params.emplace_back(name.substr(5), copy_of(t, true));
    REQUIRE(params.size() == 7);
    Optimizer opt(params, {.kind = OptimizerKind::muon,
                           .lr = float(meta("optim.lr")),
                           .adamw = {.beta1 = float(meta("optim.beta1")),
                                     .beta2 = float(meta("optim.beta2")),
                                     .weight_decay = float(meta("optim.weight_decay"))},
                           .muon = {.lr = meta("optim.muon_lr"),
                                    .momentum = meta("optim.muon_momentum"),
                                    .precision = precision}});
    int step = 0;
    for (const int64_t iter : {0, 1, 3}) {
      for (const auto& [name, p] : params)
        set_grad(p, *f.find(fmt::format("grad{}.{}", step, name)));
      const float scale = clip_factor(grad_norm(params), float(meta("optim.grad_clip")));
      opt.step(lr_at(iter, schedule), scale);
      ++step;
    }
    for (const auto& [name, p] : params) {
      CAPTURE(name);
      CHECK(relative_difference(p, *f.find(prefix + name), *f.find("init." + name)) < tolerance);
    }
    int momenta = 0;
    for (const auto& [name, m] : opt.state())
      if (name.starts_with("momentum.")) {
        CAPTURE(name);
        // Momentum sums the clipped grads, the same float operations on both sides.
        CHECK(max_difference(m, *f.find(prefix + name)) < 1e-7);
        ++momenta;
      }
    CHECK(momenta == 5);  // the block's matrices; not tok_emb, not ln1
  }
  // bf16 ran in bf16: its update is not fp32's.
  auto qkv = [&](Precision p) {
    for (const auto& [name, t] : trained[p])
      if (name == "blocks.0.attn.qkv.weight") return t;
    FAIL("no qkv weight");
    return Tensor();
  };
  if (trained.size() == 2)
    CHECK(relative_difference(qkv(Precision::bf16), qkv(Precision::fp32),
                              *f.find("init.blocks.0.attn.qkv.weight")) > 0.01);
}

TEST_CASE("muon: the hidden matrices of every model kind, the fused projections split") {
  nn::ModelConfig c{.vocab_size = 11, .n_layer = 2, .n_head = 2, .n_embd = 8, .block_size = 6,
                    .bias = true, .tie_weights = false};
  auto split_of = [](const nn::Module& model) {
    std::vector<std::string> out;
    for (const MuonParam& m : muon_params(model.named_parameters()))
      out.push_back(fmt::format("{}/{}", m.name, m.parts));
    return out;
  };
  const std::vector<std::string> block{"attn.qkv.weight/3", "attn.proj.weight/1",
                                       "mlp.fc.weight/1", "mlp.proj.weight/1"};
  auto blocks = [&](const std::string& stack, bool cross) {
    std::vector<std::string> out;
    for (const std::string i : {"0", "1"}) {
      for (size_t k = 0; k < block.size(); ++k) {
        if (cross && k == 2)
          for (const char* m : {"cross_attn.q.weight/1", "cross_attn.kv.weight/2",
                                "cross_attn.proj.weight/1"})
            out.push_back(stack + "blocks." + i + "." + m);
        out.push_back(stack + "blocks." + i + "." + block[k]);
      }
    }
    return out;
  };
  // Not taken: tok_emb, pos_emb, lm_head (2-D, outside the blocks), norms and biases (1-D).
  c.kind = nn::ModelKind::decoder;
  CHECK(split_of(nn::DecoderModel(c)) == blocks("", false));
  c.kind = nn::ModelKind::encoder;
  CHECK(split_of(nn::EncoderModel(c)) == blocks("", false));
  c.kind = nn::ModelKind::encoder_decoder;
  std::vector<std::string> both = blocks("encoder.", false);
  for (const std::string& s : blocks("decoder.", true)) both.push_back(s);
  CHECK(split_of(nn::EncoderDecoderModel(c)) == both);

  // The optimizer's state: AdamW's moments for every other parameter, Muon's momentum for these.
  const NamedTensors params = nn::DecoderModel(
      nn::ModelConfig{.vocab_size = 11, .n_layer = 1, .n_head = 2, .n_embd = 8, .block_size = 6})
                                  .named_parameters();
  const Optimizer opt(params, {.kind = OptimizerKind::muon});
  std::vector<std::string> names;
  for (const auto& [name, t] : opt.state()) names.push_back(name);
  CHECK(names == std::vector<std::string>{
                     "m.tok_emb.weight", "v.tok_emb.weight", "m.pos_emb.weight",
                     "v.pos_emb.weight", "m.blocks.0.ln1.weight", "v.blocks.0.ln1.weight",
                     "m.blocks.0.ln2.weight", "v.blocks.0.ln2.weight", "m.ln_f.weight",
                     "v.ln_f.weight", "momentum.blocks.0.attn.qkv.weight",
                     "momentum.blocks.0.attn.proj.weight", "momentum.blocks.0.mlp.fc.weight",
                     "momentum.blocks.0.mlp.proj.weight"});
}

namespace {

// A weight [3·8, 8] split like attn.qkv, a tall one and an embedding, with grads from rng.
NamedTensors muon_case(Rng& rng) {
  return {{"tok_emb.weight", Tensor::randn({5, 8}, rng, 0.02f, true)},
          {"blocks.0.attn.qkv.weight", Tensor::randn({24, 8}, rng, 0.02f, true)},
          {"blocks.0.mlp.fc.weight", Tensor::randn({32, 8}, rng, 0.02f, true)}};
}

void random_grads(const NamedTensors& params, Rng& rng) {
  for (const auto& [name, p] : params) set_grad(p, Tensor::randn(p.shape(), rng));
}

}  // namespace

TEST_CASE("muon: a restored optimizer continues bit for bit, on any thread count") {
  for (const Precision precision : precisions()) {
    CAPTURE(enum_name(precision));
    const OptimizerConfig config{.kind = OptimizerKind::muon, .muon = {.precision = precision}};
    std::vector<std::vector<float>> results;
    for (const int threads : {1, 2, 3}) {
      set_num_threads(threads);
      Rng init(9), grads_a(10);
      NamedTensors a = muon_case(init), b = muon_case(init);
      Optimizer first(a, config), second(b, config);
      random_grads(a, grads_a);
      first.step(1e-3f, 0.5f);
      // b takes a's weights and state after one step, and the same grads for the next.
      second.load_state(first.state(), first.step_count());
      for (size_t i = 0; i < a.size(); ++i) b[i].second.copy_from(a[i].second);
      Rng grads_b = grads_a;
      random_grads(a, grads_a);
      random_grads(b, grads_b);
      first.step(5e-4f, 1.0f);
      second.step(5e-4f, 1.0f);
      for (size_t i = 0; i < a.size(); ++i) CHECK(a[i].second.to_vector() == b[i].second.to_vector());
      results.push_back(a[1].second.to_vector());
    }
    set_num_threads(0);
    CHECK(results[0] == results[1]);
    CHECK(results[0] == results[2]);
  }
}

TEST_CASE("optimizer: a state of the other optim.kind is one error saying so") {
  Rng rng(3);
  const NamedTensors params = muon_case(rng);
  const Optimizer adamw(params, {}), muon(params, {.kind = OptimizerKind::muon});
  Optimizer into_adamw(params, {}), into_muon(params, {.kind = OptimizerKind::muon});
  CHECK_THROWS_WITH_AS(into_adamw.load_state(muon.state(), 1),
                       "optimizer state: it is optim.kind = \"muon\"'s ('momentum.blocks.0.attn."
                       "qkv.weight' is Muon's momentum), this run's optim.kind is \"adamw\"; the "
                       "optimizer cannot change on resume: start a new run from the checkpoint's "
                       "weights with --init-from",
                       Error);
  CHECK_THROWS_WITH_AS(into_muon.load_state(adamw.state(), 1),
                       doctest::Contains("it is optim.kind = \"adamw\"'s (no Muon momentum), this "
                                         "run's optim.kind is \"muon\""),
                       Error);
  NamedTensors wrong = muon.state();
  wrong.back().second = Tensor::zeros({2, 2});
  CHECK_THROWS_WITH_AS(into_muon.load_state(wrong, 1),
                       "optimizer state: 'momentum.blocks.0.mlp.fc.weight' is [2, 2], parameter "
                       "expects [32, 8]",
                       Error);
}

TEST_CASE("muon: a weight that is not a matrix, or whose rows do not split, is refused") {
  CHECK_THROWS_WITH_AS(Muon({{"w", Tensor::zeros({4}, true)}}, {}),
                       "muon: 'w' is [4]; Muon updates matrices only", Error);
  CHECK_THROWS_WITH_AS(Muon({{"w", Tensor::zeros({4, 2}, true), 3}}, {}),
                       "muon: 'w' is [4, 2], which does not split into 3 blocks of rows", Error);
}
