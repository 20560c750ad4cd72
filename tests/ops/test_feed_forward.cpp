// feed_forward: the fused MLP must equal linear -> gelu -> linear in values and gradients, on
// its own path (enough rows to share between the threads) and on its fallback.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "ops/feed_forward.h"
#include "qkv/error.h"
#include "qkv/ops.h"
#include "qkv/runtime.h"
#include "support/gradcheck.h"

using namespace qkv;
using qkv::testing::check_gradients;

namespace {

Tensor leaf(Shape shape, Rng& rng, float stddev = 1.0f) {
  return Tensor::randn(shape, rng, stddev, true);
}

Tensor copy_of(const Tensor& t) {
  return t.defined() ? Tensor::from_vector(t.shape(), t.to_vector(), t.requires_grad()) : Tensor();
}

// Two summation orders of the same float math: 1e-4 covers the rounding of a weight gradient
// summed over 160 rows with cancellation (seen: 1.1e-5 on 0.114); a wrong gradient is off by
// O(1).
bool close(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::abs(a[i] - b[i]) > 1e-4f * (1.0f + std::abs(b[i]))) return false;
  return true;
}

// The fused op and the three ops on copies of the same inputs: outputs and every gradient.
void check_matches_composition(Shape x_shape, int64_t F, bool bias, bool x_grad) {
  Rng rng(31);
  const int64_t C = x_shape.back();
  Tensor x = Tensor::randn(x_shape, rng, 1.0f, x_grad), w1 = leaf({F, C}, rng, 0.3f),
         w2 = leaf({C, F}, rng, 0.3f);
  Tensor b1 = bias ? leaf({F}, rng) : Tensor(), b2 = bias ? leaf({C}, rng) : Tensor();
  const std::vector<Tensor> a{x, w1, b1, w2, b2};
  std::vector<Tensor> b;
  for (const Tensor& t : a) b.push_back(copy_of(t));
  Tensor ya = feed_forward(a[0], a[1], a[2], a[3], a[4]);
  Tensor yb = linear(gelu(linear(b[0], b[1], b[2])), b[3], b[4]);
  CHECK(close(ya.to_vector(), yb.to_vector()));
  const Tensor seed = Tensor::randn(ya.shape(), rng);
  ya.backward(seed);
  yb.backward(seed);
  for (size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    if (!a[i].defined() || !a[i].requires_grad()) continue;
    CHECK(close(a[i].grad().to_vector(), b[i].grad().to_vector()));
  }
}

}  // namespace

TEST_CASE("feed_forward: equals linear -> gelu -> linear, on any thread count") {
  for (const int threads : {1, 2, 3}) {
    CAPTURE(threads);
    set_num_threads(threads);
    check_matches_composition({4, 40, 32}, 128, false, true);  // the fused path
    check_matches_composition({160, 32}, 128, true, true);     // with biases
    check_matches_composition({160, 32}, 128, true, false);    // x needs no grad
    check_matches_composition({3, 32}, 128, true, true);       // too few rows: the fallback
  }
  set_num_threads(0);
}

TEST_CASE("feed_forward: gradients match finite differences") {
  // 16 rows take the fused path (on one thread: the work is under the split threshold, and the
  // threaded split is checked against the composition above); small, so that float rounding
  // of the forward stays well under the central difference's resolution.
  Rng rng(32);
  Tensor x = leaf({2, 8, 4}, rng), w1 = leaf({8, 4}, rng, 0.5f), b1 = leaf({8}, rng),
         w2 = leaf({4, 8}, rng, 0.5f), b2 = leaf({4}, rng);
  check_gradients("feed_forward", [&] { return feed_forward(x, w1, b1, w2, b2); },
                  {x, w1, b1, w2, b2});
  check_gradients("feed_forward, no biases",
                  [&] { return feed_forward(x, w1, Tensor(), w2, Tensor()); }, {x, w1, w2});
}

TEST_CASE("feed_forward: the same bits twice on a fixed thread count") {
  Rng rng(33);
  Tensor x = leaf({96, 32}, rng), w1 = leaf({128, 32}, rng), w2 = leaf({32, 128}, rng);
  std::vector<std::vector<float>> runs;
  for (int r = 0; r < 2; ++r) {
    for (const Tensor& t : {x, w1, w2}) t.zero_grad();
    Tensor y = feed_forward(x, w1, Tensor(), w2, Tensor());
    y.backward(Tensor::ones(y.shape()));
    runs.push_back(y.to_vector());
    for (const Tensor& t : {x, w1, w2}) {
      const std::vector<float> g = t.grad().to_vector();
      runs.back().insert(runs.back().end(), g.begin(), g.end());
    }
  }
  CHECK(runs[0] == runs[1]);
}

TEST_CASE("feed_forward: an argument passed twice gets both gradients") {
  // x is w2's transpose shape only when C == F; use a square case with x = w1.
  Rng rng(34);
  Tensor w = leaf({8, 8}, rng, 0.5f), w2 = leaf({8, 8}, rng, 0.5f);
  check_gradients("feed_forward(w, w, w2)",
                  [&] { return feed_forward(w, w, Tensor(), w2, Tensor()); }, {w, w2});
}

TEST_CASE("feed_forward: NoGradGuard records no node and gives the same values") {
  Rng rng(35);
  Tensor x = leaf({96, 32}, rng), w1 = leaf({128, 32}, rng), w2 = leaf({32, 128}, rng);
  const Tensor with_grad = feed_forward(x, w1, Tensor(), w2, Tensor());
  NoGradGuard no_grad;
  const Tensor y = feed_forward(x, w1, Tensor(), w2, Tensor());
  CHECK(y.grad_fn() == nullptr);
  CHECK_FALSE(y.requires_grad());
  CHECK(y.to_vector() == with_grad.to_vector());
}

TEST_CASE("feed_forward: mismatched shapes are errors naming the op and the tensors") {
  Rng rng(36);
  Tensor x = leaf({4, 8}, rng), w1 = leaf({16, 8}, rng), w2 = leaf({8, 16}, rng);
  CHECK_THROWS_WITH_AS(feed_forward(x, w1, Tensor(), leaf({8, 15}, rng), Tensor()),
                       "feed_forward: x [4, 8] has 8 features, but w1 [16, 8] and w2 [8, 15] "
                       "must be [F, 8] and [8, F]",
                       Error);
  CHECK_THROWS_WITH_AS(feed_forward(x, w1, leaf({15}, rng), w2, Tensor()),
                       "feed_forward: b1 [15] does not match w1 [16, 8]: expected [16]", Error);
  CHECK_THROWS_WITH_AS(feed_forward(x, w1, Tensor(), w2, leaf({7}, rng)),
                       "feed_forward: b2 [7] does not match w2 [8, 16]: expected [8]", Error);
  CHECK_THROWS_WITH_AS(feed_forward(x, leaf({16}, rng), Tensor(), w2, Tensor()),
                       doctest::Contains("feed_forward: needs x [..., C], w1 [F, C]"), Error);
}

TEST_CASE("feed_forward: one node when fused, the three ops when it falls back") {
  Rng rng(37);
  Tensor w1 = leaf({8, 4}, rng), w2 = leaf({4, 8}, rng);
  CHECK(std::string(feed_forward(leaf({16, 4}, rng), w1, Tensor(), w2, Tensor()).grad_fn()->op) ==
        "feed_forward");
  CHECK(std::string(feed_forward(leaf({3, 4}, rng), w1, Tensor(), w2, Tensor()).grad_fn()->op) ==
        "linear");
}

namespace {

// residual_feed_forward against layer_norm -> feed_forward's composition -> dropout -> add, on
// copies of the same inputs: output and every gradient.
void check_residual_matches(Shape x_shape, int64_t F, bool bias, float p) {
  Rng rng(41);
  const int64_t C = x_shape.back();
  Tensor x = leaf(x_shape, rng), lw = leaf({C}, rng), lb = bias ? leaf({C}, rng) : Tensor();
  Tensor w1 = leaf({F, C}, rng, 0.3f), w2 = leaf({C, F}, rng, 0.3f);
  Tensor b1 = bias ? leaf({F}, rng) : Tensor(), b2 = bias ? leaf({C}, rng) : Tensor();
  const std::vector<Tensor> a{x, lw, lb, w1, b1, w2, b2};
  std::vector<Tensor> b;
  for (const Tensor& t : a) b.push_back(copy_of(t));
  Rng ra(5), rb(5);
  Tensor ya = residual_feed_forward(a[0], a[1], a[2], 1e-5f, a[3], a[4], a[5], a[6], p, &ra);
  Tensor mlp = linear(gelu(linear(layer_norm(b[0], b[1], b[2], 1e-5f), b[3], b[4])), b[5], b[6]);
  Tensor yb = b[0] + (p > 0 ? dropout(mlp, p, true, rb) : mlp);
  CHECK(close(ya.to_vector(), yb.to_vector()));
  const Tensor seed = Tensor::randn(ya.shape(), rng);
  ya.backward(seed);
  yb.backward(seed);
  for (size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    if (a[i].defined()) CHECK(close(a[i].grad().to_vector(), b[i].grad().to_vector()));
  }
}

}  // namespace

TEST_CASE("residual_feed_forward: equals layer_norm, the MLP, dropout and the add") {
  for (const int threads : {1, 2, 3}) {
    CAPTURE(threads);
    set_num_threads(threads);
    check_residual_matches({4, 40, 32}, 128, false, 0.0f);  // the fused path
    check_residual_matches({160, 32}, 128, true, 0.0f);     // with biases
    check_residual_matches({160, 32}, 128, true, 0.3f);     // with dropout
    check_residual_matches({3, 32}, 128, true, 0.3f);       // too few rows: the fallback
  }
  set_num_threads(0);
}

TEST_CASE("residual_feed_forward: gradients match finite differences") {
  Rng rng(42);
  Tensor x = leaf({2, 8, 4}, rng), lw = leaf({4}, rng), lb = leaf({4}, rng);
  Tensor w1 = leaf({8, 4}, rng, 0.5f), b1 = leaf({8}, rng), w2 = leaf({4, 8}, rng, 0.5f),
         b2 = leaf({4}, rng);
  check_gradients(
      "residual_feed_forward",
      [&] { return residual_feed_forward(x, lw, lb, 1e-5f, w1, b1, w2, b2, 0, nullptr); },
      {x, lw, lb, w1, b1, w2, b2});
  check_gradients("residual_feed_forward, dropout",
                  [&] {
                    Rng drop(7);  // the same mask on every call
                    return residual_feed_forward(x, lw, Tensor(), 1e-5f, w1, Tensor(), w2, Tensor(),
                                                 0.25f, &drop);
                  },
                  {x, lw, w1, w2});
  CHECK(std::string(
            residual_feed_forward(x, lw, lb, 1e-5f, w1, b1, w2, b2, 0, nullptr).grad_fn()->op) ==
        "residual_feed_forward");
}

TEST_CASE("residual_feed_forward: NoGradGuard, eval (no rng) and bad shapes") {
  Rng rng(43);
  Tensor x = leaf({96, 32}, rng), lw = leaf({32}, rng), w1 = leaf({128, 32}, rng),
         w2 = leaf({32, 128}, rng);
  const Tensor with_grad = residual_feed_forward(x, lw, Tensor(), 1e-5f, w1, Tensor(), w2, Tensor(),
                                                 0.5f, nullptr);  // no rng: no dropout
  {
    NoGradGuard no_grad;
    const Tensor y =
        residual_feed_forward(x, lw, Tensor(), 1e-5f, w1, Tensor(), w2, Tensor(), 0.5f, nullptr);
    CHECK(y.grad_fn() == nullptr);
    CHECK(y.to_vector() == with_grad.to_vector());
  }
  CHECK_THROWS_WITH_AS(
      residual_feed_forward(x, leaf({31}, rng), Tensor(), 1e-5f, w1, Tensor(), w2, Tensor(), 0,
                            nullptr),
      "residual_feed_forward: x [96, 32] has 32 features, but the layer norm has weight [31] and "
      "bias (undefined)",
      Error);
  CHECK_THROWS_WITH_AS(
      residual_feed_forward(x, lw, Tensor(), 1e-5f, w1, Tensor(), w2, Tensor(), 1.0f, &rng),
      "residual_feed_forward: dropout must be in [0, 1), got 1", Error);
}
