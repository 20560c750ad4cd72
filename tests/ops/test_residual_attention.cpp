// residual_self_attention: a pre-norm self-attention sublayer fused into one node must equal
// layer_norm -> linear -> packed_self_attention -> linear -> dropout -> add, in values and in
// every gradient, on the fused path and on its fallback.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "ops/attention.h"
#include "ops/residual_attention.h"
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

// Two summation orders of the same float math: 1e-4 covers weight gradients summed over a few
// hundred rows with cancellation; a wrong gradient is off by O(1).
bool close(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::abs(a[i] - b[i]) > 1e-4f * (1.0f + std::abs(b[i]))) return false;
  return true;
}

struct Case {
  int64_t B, T, C, NH;
  bool bias, causal, padded;
  float p;  // attention and output dropout
};

void check_matches(const Case& k) {
  CAPTURE(k.B);
  CAPTURE(k.T);
  CAPTURE(k.bias);
  CAPTURE(k.causal);
  CAPTURE(k.padded);
  CAPTURE(k.p);
  Rng rng(51);
  const int64_t C = k.C;
  Tensor x = leaf({k.B, k.T, C}, rng), lw = leaf({C}, rng), lb = k.bias ? leaf({C}, rng) : Tensor();
  Tensor wq = leaf({3 * C, C}, rng, 0.3f), bq = k.bias ? leaf({3 * C}, rng) : Tensor();
  Tensor wp = leaf({C, C}, rng, 0.3f), bp = k.bias ? leaf({C}, rng) : Tensor();
  std::vector<float> padding(static_cast<size_t>(k.B * k.T), 0.0f);
  padding[1] = padding.back() = 1;
  const Tensor pad = k.padded ? Tensor::from_vector({k.B, k.T}, padding) : Tensor();
  const std::vector<Tensor> a{x, lw, lb, wq, bq, wp, bp};
  std::vector<Tensor> b;
  for (const Tensor& t : a) b.push_back(copy_of(t));
  Rng ra(5), rb(5);
  AttentionOptions oa{.causal = k.causal, .key_padding = pad, .dropout = k.p, .rng = &ra};
  AttentionOptions ob{.causal = k.causal, .key_padding = pad, .dropout = k.p, .rng = &rb};
  Tensor ya =
      residual_self_attention(a[0], a[1], a[2], 1e-5f, a[3], a[4], a[5], a[6], k.NH, oa, k.p, &ra);
  Tensor z = linear(
      packed_self_attention(linear(layer_norm(b[0], b[1], b[2], 1e-5f), b[3], b[4]), k.NH, ob),
      b[5], b[6]);
  Tensor yb = b[0] + (k.p > 0 ? dropout(z, k.p, true, rb) : z);
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

TEST_CASE("residual_self_attention: equals the sublayer's ops one by one, on any thread count") {
  for (const int threads : {1, 2, 3}) {
    CAPTURE(threads);
    set_num_threads(threads);
    // B·T·C² >= 2^18, so the sequences are shared between the threads.
    check_matches({6, 20, 64, 4, false, true, false, 0.0f});  // the baby config's shape, small
    check_matches({6, 20, 64, 4, true, false, true, 0.0f});   // biases, padding, bidirectional
    check_matches({5, 20, 64, 4, true, true, false, 0.2f});   // both dropouts; B uneven
    check_matches({4, 70, 64, 2, false, true, true, 0.1f});   // two blocks of query rows
    check_matches({1, 80, 64, 4, true, true, false, 0.2f});   // one sequence: the fallback
  }
  set_num_threads(0);
}

TEST_CASE("residual_self_attention: gradients match finite differences") {
  Rng rng(52);
  Tensor x = leaf({2, 5, 4}, rng), lw = leaf({4}, rng), lb = leaf({4}, rng);
  Tensor wq = leaf({12, 4}, rng, 0.5f), bq = leaf({12}, rng), wp = leaf({4, 4}, rng, 0.5f),
         bp = leaf({4}, rng);
  const Tensor pad = Tensor::from_vector({2, 5}, {0, 0, 0, 0, 1, 0, 1, 0, 0, 0});
  check_gradients("residual_self_attention",
                  [&] {
                    AttentionOptions o{.causal = true, .key_padding = pad};
                    return residual_self_attention(x, lw, lb, 1e-5f, wq, bq, wp, bp, 2, o, 0.0f,
                                                   nullptr);
                  },
                  {x, lw, lb, wq, bq, wp, bp});
  check_gradients("residual_self_attention, dropout",
                  [&] {
                    Rng drop(7);  // the same masks on every call
                    AttentionOptions o{.causal = true, .dropout = 0.2f, .rng = &drop};
                    return residual_self_attention(x, lw, Tensor(), 1e-5f, wq, Tensor(), wp,
                                                   Tensor(), 2, o, 0.25f, &drop);
                  },
                  {x, lw, wq, wp});
  AttentionOptions o{.causal = true};
  CHECK(std::string(residual_self_attention(x, lw, lb, 1e-5f, wq, bq, wp, bp, 2, o, 0, nullptr)
                        .grad_fn()
                        ->op) == "residual_self_attention");
}

TEST_CASE("residual_self_attention: NoGradGuard records no node; bad shapes are errors") {
  Rng rng(53);
  Tensor x = leaf({4, 16, 32}, rng), lw = leaf({32}, rng), wq = leaf({96, 32}, rng, 0.3f),
         wp = leaf({32, 32}, rng, 0.3f);
  AttentionOptions o{.causal = true};
  const Tensor with_grad =
      residual_self_attention(x, lw, Tensor(), 1e-5f, wq, Tensor(), wp, Tensor(), 4, o, 0, nullptr);
  {
    NoGradGuard no_grad;
    const Tensor y = residual_self_attention(x, lw, Tensor(), 1e-5f, wq, Tensor(), wp, Tensor(), 4,
                                             o, 0, nullptr);
    CHECK(y.grad_fn() == nullptr);
    CHECK(y.to_vector() == with_grad.to_vector());
  }
  CHECK_THROWS_WITH_AS(residual_self_attention(x, lw, Tensor(), 1e-5f, leaf({95, 32}, rng),
                                               Tensor(), wp, Tensor(), 4, o, 0, nullptr),
                       doctest::Contains("residual_self_attention: x [4, 16, 32] needs a layer "
                                         "norm of [32], qkv [96, 32] and proj [32, 32]"),
                       Error);
  CHECK_THROWS_WITH_AS(
      residual_self_attention(x, lw, Tensor(), 1e-5f, wq, Tensor(), wp, Tensor(), 5, o, 0, nullptr),
      "residual_self_attention: C = 32 channels (x [4, 16, 32]) are not "
      "divisible by n_head = 5",
      Error);
  AttentionOptions bad_pad{.key_padding = Tensor::zeros({4, 15})};
  CHECK_THROWS_WITH_AS(residual_self_attention(x, lw, Tensor(), 1e-5f, wq, Tensor(), wp, Tensor(),
                                               4, bad_pad, 0, nullptr),
                       doctest::Contains("key_padding is [4, 15], expected [B, T] = [4, 16]"),
                       Error);
}
