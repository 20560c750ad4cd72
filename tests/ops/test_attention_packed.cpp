// packed_self_attention: self-attention read in place from a [B, T, 3C] projection must equal
// scaled_dot_product_attention on the split q, k, v, in values and gradients.
#include <doctest/doctest.h>

#include <vector>

#include "ops/attention.h"
#include "qkv/error.h"
#include "qkv/ops.h"
#include "support/gradcheck.h"

using namespace qkv;
using qkv::testing::check_gradients;

namespace {

AttentionOptions opts(bool causal, Tensor pad = Tensor(), float dropout = 0.0f,
                      Rng* rng = nullptr) {
  AttentionOptions o;
  o.causal = causal;
  o.key_padding = std::move(pad);
  o.dropout = dropout;
  o.rng = rng;
  return o;
}

// The reference path: split the packed tensor, then the three-input op.
Tensor split_then_attend(const Tensor& qkv, int64_t n_head, const AttentionOptions& o) {
  const int64_t C = qkv.size(2) / 3;
  const int64_t sizes[] = {C, C, C};
  std::vector<Tensor> parts = split(qkv, sizes, 2);
  return scaled_dot_product_attention(parts[0], parts[1], parts[2], n_head, o);
}

}  // namespace

TEST_CASE("packed_self_attention: gradients match finite differences") {
  Rng rng(21);
  SUBCASE("causal, two heads") {
    Tensor qkv = Tensor::randn({2, 4, 12}, rng, 1.0f, true);
    check_gradients("packed causal", [&] { return packed_self_attention(qkv, 2, opts(true)); },
                    {qkv});
  }
  SUBCASE("key padding, one head") {
    Tensor qkv = Tensor::randn({2, 4, 9}, rng, 1.0f, true);
    Tensor pad = Tensor::from_vector({2, 4}, {0, 0, 1, 0, 1, 0, 0, 0});
    check_gradients("packed padding",
                    [&] { return packed_self_attention(qkv, 1, opts(false, pad)); }, {qkv});
  }
  SUBCASE("dropout on the probabilities") {
    Tensor qkv = Tensor::randn({2, 4, 12}, rng, 1.0f, true);
    check_gradients("packed dropout",
                    [&] {
                      Rng drop_rng(5);  // the same mask on every call
                      return packed_self_attention(qkv, 2, opts(true, Tensor(), 0.3f, &drop_rng));
                    },
                    {qkv});
  }
}

TEST_CASE("packed_self_attention: equals scaled_dot_product_attention on the split q, k, v") {
  // T = 130: more than one block of query rows (the blocks' dK, dV are written, then added).
  Rng rng(22);
  for (const int64_t T : {5, 130}) {
    std::vector<float> padding(static_cast<size_t>(3 * T), 0.0f);
    padding[static_cast<size_t>(T + 3)] = padding[static_cast<size_t>(T + 4)] = 1;
    padding[static_cast<size_t>(2 * T + 1)] = 1;
    const Tensor pad = Tensor::from_vector({3, T}, padding);
    for (const bool causal : {true, false}) {
      for (const bool padded : {false, true}) {
        for (const float p : {0.0f, 0.25f}) {
          CAPTURE(T);
          CAPTURE(causal);
          CAPTURE(padded);
          CAPTURE(p);
          Tensor a = Tensor::randn({3, T, 24}, rng, 1.0f, true);
          Tensor b = Tensor::from_vector(a.shape(), a.to_vector(), true);
          Rng ra(9), rb(9);
          Tensor ya = packed_self_attention(a, 4, opts(causal, padded ? pad : Tensor(), p, &ra));
          Tensor yb = split_then_attend(b, 4, opts(causal, padded ? pad : Tensor(), p, &rb));
          // Same kernels on the same numbers, only the operands' row strides differ: bit for bit.
          CHECK(ya.to_vector() == yb.to_vector());
          Tensor seed = Tensor::randn(ya.shape(), rng);
          ya.backward(seed);
          yb.backward(seed);
          CHECK(a.grad().to_vector() == b.grad().to_vector());
        }
      }
    }
  }
}

TEST_CASE("packed_self_attention: NoGradGuard records no node and gives the same values") {
  Rng rng(23);
  Tensor qkv = Tensor::randn({2, 3, 6}, rng, 1.0f, true);
  const Tensor with_grad = packed_self_attention(qkv, 2, opts(true));
  NoGradGuard no_grad;
  const Tensor y = packed_self_attention(qkv, 2, opts(true));
  CHECK_FALSE(y.requires_grad());
  CHECK(y.grad_fn() == nullptr);
  CHECK(y.to_vector() == with_grad.to_vector());
}

TEST_CASE("packed_self_attention: bad shapes are errors naming the op") {
  Rng rng(24);
  CHECK_THROWS_WITH_AS(packed_self_attention(Tensor::randn({2, 3, 7}, rng), 1, {}),
                       "packed_self_attention: qkv is [2, 3, 7]; expected [B, T, 3C] with q, k, "
                       "v side by side",
                       Error);
  CHECK_THROWS_WITH_AS(packed_self_attention(Tensor::randn({2, 3, 6}, rng), 4, {}),
                       "packed_self_attention: C = 2 channels (qkv is [2, 3, 6]) are not "
                       "divisible by n_head = 4",
                       Error);
  CHECK_THROWS_WITH_AS(
      packed_self_attention(Tensor::randn({2, 3, 6}, rng), 1, opts(false, Tensor::zeros({2, 4}))),
      "packed_self_attention: key_padding is [2, 4], expected [B, Tk] = [2, 3] "
      "for qkv [2, 3, 6]",
      Error);
}
