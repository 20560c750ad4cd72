// mlp: the sublayer op against its composed oracle (sublayer_oracle.h) for every option, on
// several thread counts; its gradients against finite differences; and errors.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "qkv/error.h"
#include "qkv/ops.h"
#include "qkv/runtime.h"
#include "sublayer_oracle.h"
#include "support/gradcheck.h"

using namespace qkv;
using qkv::testing::check_close;
using qkv::testing::copy_of;

namespace {

struct Case {
  Norm norm = Norm::pre;
  bool bias = true;
  float p = 0.0f;  // dropout
  Shape x{4, 5, 8};
  int64_t F = 32;
  Activation act = Activation::gelu;
  NormType norm_type = NormType::layernorm;  // rmsnorm: no norm bias
};

struct Inputs {
  Tensor x, lw, lb, w_fc, b_fc, w_proj, b_proj, w_gate, b_gate;
  std::vector<Tensor> leaves() const {
    std::vector<Tensor> all;
    for (const Tensor& t : {x, lw, lb, w_fc, b_fc, w_proj, b_proj, w_gate, b_gate})
      if (t.defined()) all.push_back(t);
    return all;
  }
};

Inputs make_inputs(const Case& k, Rng& rng) {
  const int64_t C = k.x[k.x.rank() - 1];
  auto leaf = [&](Shape s, float stddev) { return Tensor::randn(s, rng, stddev, true); };
  Inputs in{leaf(k.x, 1.0f), leaf({C}, 0.5f),      Tensor(), leaf({k.F, C}, 0.4f),
            Tensor(),        leaf({C, k.F}, 0.3f), Tensor()};
  if (k.bias) in.lb = leaf({C}, 1.0f), in.b_fc = leaf({k.F}, 0.3f), in.b_proj = leaf({C}, 0.3f);
  if (k.norm_type == NormType::rmsnorm) in.lb = Tensor();
  if (k.act == Activation::swiglu) {
    in.w_gate = leaf({k.F, C}, 0.4f);
    if (k.bias) in.b_gate = leaf({k.F}, 0.3f);
  }
  return in;
}

MlpParams params(const Inputs& in, const Case& k, Rng* rng) {
  return {.residual = {.norm = k.norm,
                       .norm_type = k.norm_type,
                       .ln_weight = in.lw,
                       .ln_bias = in.lb,
                       .dropout = k.p,
                       .rng = rng},
          .activation = k.act,
          .w_fc = in.w_fc,
          .b_fc = in.b_fc,
          .w_proj = in.w_proj,
          .b_proj = in.b_proj,
          .w_gate = in.w_gate,
          .b_gate = in.b_gate};
}

void check_against_oracle(const Case& k) {
  CAPTURE(k.norm == Norm::pre);
  CAPTURE(k.bias);
  CAPTURE(k.p);
  CAPTURE(k.x.str());
  CAPTURE(enum_name(k.act));
  CAPTURE(enum_name(k.norm_type));
  Rng rng(31);
  const Inputs a = make_inputs(k, rng);
  const Inputs b{copy_of(a.x),      copy_of(a.lw),     copy_of(a.lb),
                 copy_of(a.w_fc),   copy_of(a.b_fc),   copy_of(a.w_proj),
                 copy_of(a.b_proj), copy_of(a.w_gate), copy_of(a.b_gate)};
  Rng ra(5), rb(5);
  Tensor ya = mlp(a.x, params(a, k, &ra)), yb = testing::mlp_oracle(b.x, params(b, k, &rb));
  check_close(ya, yb, "output");
  const Tensor seed = Tensor::randn(ya.shape(), rng);
  ya.backward(seed);
  yb.backward(seed);
  const std::vector<Tensor> la = a.leaves(), lb = b.leaves();
  for (size_t i = 0; i < la.size(); ++i)
    check_close(la[i].grad(), lb[i].grad(), fmt::format("gradient of input {}", i));
}

}  // namespace

TEST_CASE("mlp: equals the composed ops for every option, on any thread count") {
  for (int threads : {1, 2, 3, 4}) {
    CAPTURE(threads);
    set_num_threads(threads);
    for (Norm norm : {Norm::pre, Norm::post})
      for (bool bias : {true, false})
        for (float p : {0.0f, 0.2f}) {
          // One row (fewer rows than threads), a few rows, and enough to split between threads.
          for (Shape x : {Shape{1, 8}, Shape{4, 5, 8}, Shape{3, 64, 16}})
            check_against_oracle({norm, bias, p, x, 4 * x[x.rank() - 1]});
        }
  }
  set_num_threads(0);
}

TEST_CASE("mlp: gradients match finite differences") {
  auto check = [](const Case& k) {
    Rng rng(8);
    const Inputs in = make_inputs(k, rng);
    testing::check_gradients(
        "mlp",
        [&] {
          Rng drop(11);  // the same mask at every evaluation
          return mlp(in.x, params(in, k, &drop));
        },
        in.leaves());
  };
  SUBCASE("pre-norm with biases") { check({.x = {2, 3, 4}, .F = 6}); }
  SUBCASE("post-norm without biases") {
    check({.norm = Norm::post, .bias = false, .x = {2, 3, 4}, .F = 6});
  }
  SUBCASE("dropout") { check({.p = 0.3f, .x = {2, 3, 4}, .F = 6}); }
  // relu2's kink at 0 is away from every h here (random inputs: none within eps of it).
  SUBCASE("relu2") { check({.x = {2, 3, 4}, .F = 6, .act = Activation::relu2}); }
  SUBCASE("swiglu, with and without biases") {
    check({.x = {2, 3, 4}, .F = 6, .act = Activation::swiglu});
    check({.norm = Norm::post, .bias = false, .x = {2, 3, 4}, .F = 6, .act = Activation::swiglu});
  }
  SUBCASE("rmsnorm, before and after") {
    check({.x = {2, 3, 4}, .F = 6, .norm_type = NormType::rmsnorm});
    check({.norm = Norm::post, .x = {2, 3, 4}, .F = 6, .norm_type = NormType::rmsnorm});
  }
}

TEST_CASE("mlp: relu2, swiglu and rmsnorm equal the composed ops, on any thread count") {
  for (int threads : {1, 2, 3}) {
    CAPTURE(threads);
    set_num_threads(threads);
    for (Activation act : {Activation::relu2, Activation::swiglu})
      for (Norm norm : {Norm::pre, Norm::post})
        for (Shape x : {Shape{1, 8}, Shape{3, 64, 16}}) {
          check_against_oracle({norm, true, 0.2f, x, 24, act});
          check_against_oracle({norm, false, 0.0f, x, 24, act, NormType::rmsnorm});
        }
  }
  set_num_threads(0);
}

TEST_CASE("mlp: the same bits twice on a fixed thread count") {
  set_num_threads(2);
  std::vector<std::vector<float>> runs;
  for (int run = 0; run < 2; ++run) {
    Rng rng(3), drop(9);
    const Case k{.p = 0.2f, .x = {3, 64, 16}, .F = 64};
    const Inputs in = make_inputs(k, rng);
    Tensor y = mlp(in.x, params(in, k, &drop));
    y.backward(Tensor::randn(y.shape(), rng));
    runs.push_back(y.to_vector());
    for (const Tensor& t : in.leaves()) runs.push_back(t.grad().to_vector());
  }
  const size_t half = runs.size() / 2;
  for (size_t i = 0; i < half; ++i) CHECK(runs[i] == runs[half + i]);
  set_num_threads(0);
}

TEST_CASE("mlp: NoGradGuard records no node and gives the same values") {
  Rng rng(24);
  const Case k{.p = 0.2f};
  const Inputs in = make_inputs(k, rng);
  Rng d1(1), d2(1);
  const Tensor with = mlp(in.x, params(in, k, &d1));
  NoGradGuard no_grad;
  const Tensor without = mlp(in.x, params(in, k, &d2));
  CHECK(with.requires_grad());
  CHECK_FALSE(without.requires_grad());
  CHECK(without.to_vector() == with.to_vector());
}

TEST_CASE("mlp: bad shapes and options are errors naming the op and the tensor") {
  Rng rng(25);
  const Case k;
  const Inputs in = make_inputs(k, rng);
  const MlpParams good = params(in, k, nullptr);
  auto fails = [&](const MlpParams& p, const std::string& text) {
    CAPTURE(text);
    CHECK_THROWS_WITH_AS(mlp(in.x, p), doctest::Contains(text.c_str()), Error);
  };
  MlpParams p = good;
  p.w_fc = Tensor::zeros({32, 7});
  fails(p, "w_fc [32, 7] must be [F, 8]");
  p = good, p.w_proj = Tensor::zeros({8, 31});
  fails(p, "w_proj [8, 31] must be [8, 32]");
  p = good, p.b_fc = Tensor::zeros({8});
  fails(p, "b_fc [8] must be [32]");
  p = good, p.residual.ln_weight = Tensor();
  fails(p, "ln_weight (undefined) must be [8]");
  p = good, p.residual.dropout = -0.1f;
  fails(p, "dropout must be in [0, 1)");
  p = good, p.b_proj = in.lb;
  fails(p, "one tensor is passed as both ln_bias and b_proj");
}
