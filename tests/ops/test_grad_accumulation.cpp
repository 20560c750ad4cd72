// Ops whose backward writes a fresh gradient (a GradOut the engine marks overwrite) instead of
// adding to zeros must still add when the gradient already holds a value: a second backward
// through the same op, without zero_grad, must give twice the first gradient (exactly where the
// kernel adds its result in one operation, g + g = 2g in float; to rounding where it sums into
// the grad, as for a bias).
#include <doctest/doctest.h>

#include <functional>
#include <string>
#include <vector>

#include "qkv/ops.h"

using namespace qkv;

namespace {

// Runs fn twice, reducing through fixed random weights, and checks every input's gradient
// doubles. Once through the fresh-grad path, once through the adding path.
void check_doubles(const std::string& op, const std::function<Tensor()>& fn,
                   const std::vector<Tensor>& inputs) {
  CAPTURE(op);
  for (const Tensor& x : inputs) x.zero_grad();
  Tensor out = fn();
  Rng rng(99);
  const Tensor seed = Tensor::randn(out.shape(), rng);
  out.backward(seed);
  std::vector<std::vector<float>> once;
  for (const Tensor& x : inputs) once.push_back(x.grad().to_vector());
  fn().backward(seed);
  for (size_t n = 0; n < inputs.size(); ++n) {
    CAPTURE(n);
    const std::vector<float> got = inputs[n].grad().to_vector();
    REQUIRE(got.size() == once[n].size());
    for (size_t i = 0; i < got.size(); ++i)
      CHECK(got[i] == doctest::Approx(2.0 * once[n][i]).epsilon(1e-5));
  }
}

Tensor leaf(Shape shape, Rng& rng) { return Tensor::randn(shape, rng, 1.0f, true); }

}  // namespace

TEST_CASE("backward kernels that write fresh grads add into grads that hold values") {
  Rng rng(7);
  // Big enough for the threaded linear path (N·O·I >= 2^18) as well as a small one.
  Tensor x = leaf({64, 96}, rng), w = leaf({48, 96}, rng), b = leaf({48}, rng);
  check_doubles("linear, split", [&] { return linear(x, w, b); }, {x, w, b});
  Tensor xs = leaf({3, 4}, rng), ws = leaf({5, 4}, rng);
  check_doubles("linear, small", [&] { return linear(xs, ws); }, {xs, ws});
  Tensor h = leaf({6, 8}, rng), g = leaf({8}, rng);
  check_doubles("layer_norm", [&] { return layer_norm(h, g); }, {h, g});
  check_doubles("gelu", [&] { return gelu(h); }, {h});
  check_doubles("gelu tanh", [&] { return gelu(h, GeluApprox::tanh); }, {h});
  check_doubles("relu", [&] { return relu(h); }, {h});
  Tensor h2 = leaf({6, 8}, rng);
  check_doubles("add", [&] { return h + h2; }, {h, h2});
  check_doubles("add broadcast", [&] { return h + g; }, {h, g});
  check_doubles("mul", [&] { return h * h2; }, {h, h2});
  Tensor ax = leaf({2, 5, 4}, rng), lw = leaf({4}, rng), wi = leaf({12, 4}, rng);
  Tensor wo = leaf({4, 4}, rng), mem = leaf({2, 3, 4}, rng), wm = leaf({8, 4}, rng);
  const AttentionParams self{
      .n_head = 2, .residual = {.ln_weight = lw}, .w_in = wi, .w_out = wo, .causal = true};
  check_doubles("attention", [&] { return attention(ax, self); }, {ax, lw, wi, wo});
  Tensor wq = leaf({4, 4}, rng);
  const AttentionParams cross{.n_head = 2,
                              .residual = {.norm = Norm::post, .ln_weight = lw},
                              .w_in = wq,
                              .w_mem = wm,
                              .w_out = wo,
                              .memory = mem};
  check_doubles("cross attention", [&] { return attention(ax, cross); }, {ax, lw, wq, wm, wo, mem});
  Tensor w1 = leaf({16, 4}, rng), b1 = leaf({16}, rng), w2 = leaf({4, 16}, rng);
  const MlpParams mp{.residual = {.ln_weight = lw}, .w_fc = w1, .b_fc = b1, .w_proj = w2};
  check_doubles("mlp", [&] { return mlp(ax, mp); }, {ax, lw, w1, b1, w2});
  Tensor logits = leaf({4, 7}, rng);
  const std::vector<int32_t> targets{1, -1, 6, 0};
  check_doubles("softmax_cross_entropy", [&] { return softmax_cross_entropy(logits, targets); },
                {logits});
  check_doubles("dropout",
                [&] {
                  Rng drop(3);  // the same mask both times
                  return dropout(h, 0.25f, true, drop);
                },
                {h});
}
