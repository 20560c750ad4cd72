// softmax_cross_entropy: fused log-softmax + negative log-likelihood, mean over valid targets.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "qkv/error.h"
#include "qkv/ops.h"
#include "support/gradcheck.h"

using namespace qkv;
using qkv::testing::check_gradients;
using qkv::testing::GradcheckOptions;

TEST_CASE("softmax_cross_entropy: gradients match finite differences") {
  Rng rng(7);
  SUBCASE("[N, V], every target valid") {
    Tensor logits = Tensor::randn({4, 6}, rng, 1.0f, true);
    const std::vector<int32_t> t{0, 5, 2, 2};
    check_gradients(
        "softmax_cross_entropy", [&] { return softmax_cross_entropy(logits, t); }, {logits},
        GradcheckOptions{.four_point = true});
  }
  SUBCASE("[B, T, V] with ignored targets") {
    Tensor logits = Tensor::randn({2, 3, 5}, rng, 2.0f, true);
    const std::vector<int32_t> t{1, -1, 4, 0, -1, 3};
    check_gradients(
        "softmax_cross_entropy", [&] { return softmax_cross_entropy(logits, t); }, {logits},
        GradcheckOptions{.four_point = true});
  }
  SUBCASE("a custom ignore_index inside [0, V)") {
    Tensor logits = Tensor::randn({3, 4}, rng, 1.0f, true);
    const std::vector<int32_t> t{0, 3, 1};
    check_gradients(
        "softmax_cross_entropy", [&] { return softmax_cross_entropy(logits, t, 0); }, {logits},
        GradcheckOptions{.four_point = true});
  }
}

TEST_CASE("softmax_cross_entropy: uniform logits give log(V) and gradient (1/V - onehot)/N") {
  constexpr int64_t N = 4, V = 5;
  Tensor logits = Tensor::full({N, V}, 0.7f, true);
  const std::vector<int32_t> t{0, 4, 2, 2};
  Tensor loss = softmax_cross_entropy(logits, t);
  CHECK(loss.shape() == Shape{});
  CHECK(loss.item() == doctest::Approx(std::log(5.0)));
  loss.backward();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t v = 0; v < V; ++v)
      CHECK(logits.grad().at({n, v}) == doctest::Approx((0.2 - (v == t[n] ? 1.0 : 0.0)) / N));
}

TEST_CASE("softmax_cross_entropy: known values for [1, 2, 3]") {
  // softmax([1, 2, 3]) = [0.09003057, 0.24472847, 0.66524096].
  Tensor logits = Tensor::from_vector({2, 3}, {1, 2, 3, 1, 2, 3});
  const std::vector<int32_t> both{2, 0};
  CHECK(softmax_cross_entropy(logits, both).item() ==
        doctest::Approx((-std::log(0.66524096) - std::log(0.09003057)) / 2));
}

TEST_CASE("softmax_cross_entropy: ignored rows add no loss and get zero gradient") {
  Tensor logits = Tensor::from_vector({2, 3}, {1, 2, 3, 50, -7, 0.5f}, true);
  const std::vector<int32_t> t{2, -1};
  Tensor loss = softmax_cross_entropy(logits, t);
  CHECK(loss.item() == doctest::Approx(-std::log(0.66524096)));  // mean over the one valid row
  loss.backward();
  const std::vector<double> expected{0.09003057, 0.24472847, 0.66524096 - 1, 0, 0, 0};
  for (int64_t i = 0; i < 6; ++i)
    CHECK(logits.grad().data()[i] == doctest::Approx(expected[i]).epsilon(1e-5));
}

TEST_CASE("softmax_cross_entropy: many rows match a double-precision reference") {
  constexpr int64_t B = 4, T = 33, V = 11;
  Rng rng(21);
  Tensor logits = Tensor::randn({B, T, V}, rng, 3.0f);
  std::vector<int32_t> t(B * T);
  for (auto& id : t) id = static_cast<int32_t>(rng.below(V + 1)) - 1;  // some are -1
  double total = 0;
  int64_t valid = 0;
  for (int64_t n = 0; n < B * T; ++n) {
    if (t[n] < 0) continue;
    const float* row = logits.data() + n * V;
    double s = 0;
    for (int64_t v = 0; v < V; ++v) s += std::exp(double(row[v]));
    total += std::log(s) - row[t[n]];
    ++valid;
  }
  REQUIRE(valid > 0);
  CHECK(softmax_cross_entropy(logits, t).item() == doctest::Approx(total / valid).epsilon(1e-6));
}

TEST_CASE("softmax_cross_entropy: gradients accumulate across backward calls") {
  Rng rng(3);
  Tensor logits = Tensor::randn({3, 4}, rng, 1.0f, true);
  const std::vector<int32_t> t{1, 0, 3};
  softmax_cross_entropy(logits, t).backward();
  const std::vector<float> once = logits.grad().to_vector();
  softmax_cross_entropy(logits, t).backward();
  for (size_t i = 0; i < once.size(); ++i)
    CHECK(logits.grad().data()[i] == doctest::Approx(2 * once[i]));
}

TEST_CASE("softmax_cross_entropy: NoGradGuard records no node") {
  Tensor logits = Tensor::ones({2, 3}, true);
  const std::vector<int32_t> t{0, 1};
  NoGradGuard guard;
  Tensor loss = softmax_cross_entropy(logits, t);
  CHECK_FALSE(loss.requires_grad());
  CHECK(loss.grad_fn() == nullptr);
}

TEST_CASE("softmax_cross_entropy: bad targets and shapes are rejected with a clear message") {
  Tensor logits = Tensor::zeros({3, 4});
  const std::vector<int32_t> two{0, 1}, bad{0, 4, 1}, negative{0, 1, -2}, ignored{-1, -1, -1};
  CHECK_THROWS_WITH_AS(softmax_cross_entropy(logits, two),
                       "softmax_cross_entropy: logits [3, 4] have 3 rows but there are 2 targets",
                       Error);
  CHECK_THROWS_WITH_AS(softmax_cross_entropy(logits, bad),
                       doctest::Contains("target 4 at position 1 is outside [0, 4)"), Error);
  CHECK_THROWS_WITH_AS(softmax_cross_entropy(logits, negative),
                       doctest::Contains("target -2 at position 2"), Error);
  CHECK_THROWS_WITH_AS(softmax_cross_entropy(logits, ignored),
                       doctest::Contains("all 3 targets are ignore_index (-1)"), Error);
  CHECK_THROWS_WITH_AS(softmax_cross_entropy(Tensor::zeros({4}), std::vector<int32_t>{0}),
                       doctest::Contains("must be [N, V] or [B, T, V]"), Error);
}
