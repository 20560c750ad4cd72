// layer_norm and rms_norm over the last dim.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "qkv/error.h"
#include "qkv/ops.h"
#include "support/gradcheck.h"

using namespace qkv;
using qkv::testing::check_gradients;

TEST_CASE("layer_norm: gradients match finite differences") {
  Rng rng(7);
  SUBCASE("rank 2 with bias") {
    Tensor x = Tensor::randn({4, 6}, rng, 1.0f, true);
    Tensor w = Tensor::randn({6}, rng, 1.0f, true), b = Tensor::randn({6}, rng, 1.0f, true);
    check_gradients("layer_norm", [&] { return layer_norm(x, w, b); }, {x, w, b});
  }
  SUBCASE("rank 3 with bias") {
    Tensor x = Tensor::randn({3, 5, 8}, rng, 1.0f, true);
    Tensor w = Tensor::randn({8}, rng, 1.0f, true), b = Tensor::randn({8}, rng, 1.0f, true);
    check_gradients("layer_norm", [&] { return layer_norm(x, w, b); }, {x, w, b});
  }
  SUBCASE("rank 2 without bias") {
    Tensor x = Tensor::randn({4, 6}, rng, 1.0f, true), w = Tensor::randn({6}, rng, 1.0f, true);
    check_gradients("layer_norm", [&] { return layer_norm(x, w); }, {x, w});
  }
  SUBCASE("rank 3 without bias") {
    Tensor x = Tensor::randn({2, 3, 5}, rng, 1.0f, true), w = Tensor::randn({5}, rng, 1.0f, true);
    check_gradients("layer_norm", [&] { return layer_norm(x, w); }, {x, w});
  }
  SUBCASE("only the parameters require grad") {
    Tensor x = Tensor::randn({4, 6}, rng);
    Tensor w = Tensor::randn({6}, rng, 1.0f, true), b = Tensor::randn({6}, rng, 1.0f, true);
    check_gradients("layer_norm", [&] { return layer_norm(x, w, b); }, {w, b});
  }
  SUBCASE("only the input and bias require grad") {
    Tensor x = Tensor::randn({4, 6}, rng, 1.0f, true), w = Tensor::randn({6}, rng);
    Tensor b = Tensor::randn({6}, rng, 1.0f, true);
    check_gradients("layer_norm", [&] { return layer_norm(x, w, b); }, {x, b});
  }
}

TEST_CASE("layer_norm: an input used as x, weight and bias gets all three gradients") {
  Rng rng(11);
  Tensor x = Tensor::randn({6}, rng, 1.0f, true);
  check_gradients("layer_norm", [&] { return layer_norm(x, x, x); }, {x});
}

TEST_CASE("layer_norm: known values for a row computed by hand") {
  // x = [1, 2, 3, 4]: mean 2.5, biased variance (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25, so
  // xhat = [-1.5, -0.5, 0.5, 1.5] / sqrt(1.25) = [-1.3416408, -0.4472136, 0.4472136, 1.3416408].
  Tensor x = Tensor::from_vector({1, 4}, {1, 2, 3, 4});
  Tensor w = Tensor::from_vector({4}, {1, 2, 0.5f, -1});
  Tensor b = Tensor::from_vector({4}, {0, 1, 0, 2});
  const std::vector<float> y = layer_norm(x, w, b, 0.0f).to_vector();
  CHECK(y[0] == doctest::Approx(-1.3416408f));  // -1.3416408 * 1 + 0
  CHECK(y[1] == doctest::Approx(0.1055728f));   // -0.4472136 * 2 + 1
  CHECK(y[2] == doctest::Approx(0.2236068f));   //  0.4472136 * 0.5 + 0
  CHECK(y[3] == doctest::Approx(0.6583592f));   //  1.3416408 * -1 + 2
  const std::vector<float> no_bias = layer_norm(x, w, Tensor(), 0.0f).to_vector();
  CHECK(no_bias[1] == doctest::Approx(-0.8944272f));
  CHECK(no_bias[3] == doctest::Approx(-1.3416408f));
}

TEST_CASE("layer_norm: eps keeps a constant row finite, giving the bias") {
  Tensor x = Tensor::full({2, 3}, 5.0f);
  Tensor w = Tensor::ones({3}), b = Tensor::from_vector({3}, {0.5f, -1, 2});
  Tensor y = layer_norm(x, w, b);
  for (int64_t r = 0; r < 2; ++r)
    for (int64_t c = 0; c < 3; ++c) CHECK(y.at({r, c}) == b.at({c}));
}

TEST_CASE("layer_norm: weight and bias gradients over many rows match a serial reference") {
  // Many more rows than threads, so every thread's partial buffer contributes.
  constexpr int64_t N = 257, C = 7;
  Rng rng(5);
  Tensor x = Tensor::randn({N, C}, rng, 1.0f, true), w = Tensor::randn({C}, rng, 1.0f, true);
  Tensor b = Tensor::randn({C}, rng, 1.0f, true), dy = Tensor::randn({N, C}, rng);
  layer_norm(x, w, b).backward(dy);
  std::vector<double> dw(C, 0.0), db(C, 0.0);
  for (int64_t n = 0; n < N; ++n) {
    double m = 0, v = 0;
    for (int64_t c = 0; c < C; ++c) m += x.at({n, c});
    m /= C;
    for (int64_t c = 0; c < C; ++c) v += (x.at({n, c}) - m) * (x.at({n, c}) - m);
    const double rstd = 1.0 / std::sqrt(v / C + 1e-5);
    for (int64_t c = 0; c < C; ++c) {
      dw[c] += dy.at({n, c}) * (x.at({n, c}) - m) * rstd;
      db[c] += dy.at({n, c});
    }
  }
  for (int64_t c = 0; c < C; ++c) {
    CHECK(w.grad().at({c}) == doctest::Approx(dw[c]).epsilon(1e-4));
    CHECK(b.grad().at({c}) == doctest::Approx(db[c]).epsilon(1e-4));
  }
  // Same thread count, same inputs: bit-identical parameter gradients.
  const std::vector<float> dw_first = w.grad().to_vector(), db_first = b.grad().to_vector();
  w.zero_grad();
  b.zero_grad();
  layer_norm(x, w, b).backward(dy);
  CHECK(w.grad().to_vector() == dw_first);
  CHECK(b.grad().to_vector() == db_first);
}

TEST_CASE("layer_norm: gradients accumulate across backward calls") {
  Rng rng(3);
  Tensor x = Tensor::randn({3, 4}, rng, 1.0f, true), w = Tensor::randn({4}, rng, 1.0f, true);
  Tensor b = Tensor::randn({4}, rng, 1.0f, true), dy = Tensor::randn({3, 4}, rng);
  layer_norm(x, w, b).backward(dy);
  const std::vector<float> gx = x.grad().to_vector(), gw = w.grad().to_vector(),
                           gb = b.grad().to_vector();
  layer_norm(x, w, b).backward(dy);
  for (size_t i = 0; i < gx.size(); ++i) CHECK(x.grad().data()[i] == doctest::Approx(2 * gx[i]));
  for (size_t i = 0; i < gw.size(); ++i) {
    CHECK(w.grad().data()[i] == doctest::Approx(2 * gw[i]));
    CHECK(b.grad().data()[i] == doctest::Approx(2 * gb[i]));
  }
}

TEST_CASE("layer_norm: NoGradGuard records no node") {
  Tensor x = Tensor::ones({2, 3}, true), w = Tensor::ones({3}, true), b = Tensor::zeros({3}, true);
  NoGradGuard guard;
  Tensor y = layer_norm(x, w, b);
  CHECK_FALSE(y.requires_grad());
  CHECK(y.grad_fn() == nullptr);
}

TEST_CASE("layer_norm: mismatched weight or bias is rejected with both shapes") {
  Tensor x = Tensor::ones({2, 4});
  Tensor w = Tensor::ones({3});
  w.set_name("blocks.0.ln_1.weight");
  CHECK_THROWS_WITH_AS(
      layer_norm(x, w),
      "layer_norm: input [2, 4] has 4 features, so weight 'blocks.0.ln_1.weight' [3] must be [4]",
      Error);
  CHECK_THROWS_WITH_AS(layer_norm(x, Tensor::ones({4}), Tensor::ones({1, 4})),
                       "layer_norm: input [2, 4] has 4 features, so bias [1, 4] must be [4]",
                       Error);
  CHECK_THROWS_WITH_AS(layer_norm(x, Tensor()), doctest::Contains("weight is undefined"), Error);
  CHECK_THROWS_WITH_AS(layer_norm(Tensor::ones({}), Tensor::ones({1})),
                       doctest::Contains("layer_norm: input of shape []"), Error);
}

TEST_CASE("rms_norm: gradients match finite differences") {
  Rng rng(7);
  Tensor x = Tensor::randn({3, 5, 8}, rng, 1.0f, true), w = Tensor::randn({8}, rng, 1.0f, true);
  check_gradients("rms_norm", [&] { return rms_norm(x, w); }, {x, w});
  Tensor v = Tensor::randn({6}, rng, 1.0f, true);
  check_gradients("rms_norm", [&] { return rms_norm(v, v); }, {v});  // one tensor in two roles
}

TEST_CASE("rms_norm: known values for a row computed by hand, and no mean taken out") {
  // x = [1, 3, -1, 5]: mean(x²) = 9, so y = x / sqrt(9 + eps)·w.
  const Tensor x = Tensor::from_vector({4}, {1, 3, -1, 5});
  const Tensor w = Tensor::from_vector({4}, {1, 2, 1, 0.5f});
  const std::vector<float> y = rms_norm(x, w, 0.0f).to_vector();
  const std::vector<float> expected = {1.0f / 3, 2.0f, -1.0f / 3, 2.5f / 3};
  for (size_t i = 0; i < y.size(); ++i) CHECK(y[i] == doctest::Approx(expected[i]).epsilon(1e-6));
}

TEST_CASE("rms_norm: NoGradGuard records no node; a mismatched weight names the op") {
  Rng rng(3);
  Tensor x = Tensor::randn({2, 4}, rng, 1.0f, true), w = Tensor::randn({4}, rng, 1.0f, true);
  {
    NoGradGuard no_grad;
    CHECK_FALSE(rms_norm(x, w).requires_grad());
  }
  CHECK_THROWS_WITH_AS(rms_norm(x, Tensor::zeros({3})), doctest::Contains("rms_norm: input"),
                       Error);
}
