// dropout: inverted scaling, masks drawn from an explicit Rng.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "qkv/error.h"
#include "qkv/ops.h"
#include "qkv/runtime.h"
#include "support/gradcheck.h"

using namespace qkv;
using qkv::testing::check_gradients;

namespace {

bool same_state(const Rng& a, const Rng& b) {
  return a.state().state == b.state().state && a.state().inc == b.state().inc;
}

}  // namespace

TEST_CASE("dropout: gradients match finite differences") {
  Rng rng(7);
  Tensor x = Tensor::randn({4, 5}, rng, 1.0f, true);
  // A fresh rng with a fixed seed on every call draws the same mask for each perturbation.
  check_gradients("dropout",
                  [&] {
                    Rng mask_rng(42);
                    return dropout(x, 0.4f, true, mask_rng);
                  },
                  {x});
}

TEST_CASE("dropout: eval mode and p = 0 return the input itself and draw nothing") {
  Tensor x = Tensor::ones({3, 4}, true);
  Rng rng(1);
  const Rng before = rng;
  CHECK(dropout(x, 0.5f, false, rng).impl() == x.impl());
  CHECK(dropout(x, 0.0f, true, rng).impl() == x.impl());
  CHECK(same_state(rng, before));
}

TEST_CASE("dropout: the same seed, or a restored rng state, replays the same mask") {
  Rng init(3);
  Tensor x = Tensor::randn({64}, init);
  Rng a(9), b(9);
  CHECK(dropout(x, 0.5f, true, a).to_vector() == dropout(x, 0.5f, true, b).to_vector());

  const Rng::State saved = a.state();
  const std::vector<float> first = dropout(x, 0.5f, true, a).to_vector();
  const std::vector<float> next = dropout(x, 0.5f, true, a).to_vector();
  CHECK(first != next);  // the rng advanced, so the next mask differs
  a.set_state(saved);
  CHECK(dropout(x, 0.5f, true, a).to_vector() == first);
}

TEST_CASE("dropout: keeps about 1-p of a large tensor, scaled by 1/(1-p)") {
  constexpr int64_t n = 200000;
  constexpr float p = 0.3f;
  Rng rng(17);
  Tensor x = Tensor::full({n}, 2.0f);
  Tensor y = dropout(x, p, true, rng);
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float v = y.data()[i];
    if (v == 0.0f) continue;
    ++kept;
    REQUIRE(v == doctest::Approx(2.0f / (1.0f - p)));
  }
  // The kept fraction has standard deviation sqrt(p(1-p)/n) ≈ 0.001; 0.01 is ten of them.
  CHECK(static_cast<double>(kept) / n == doctest::Approx(1.0 - p).epsilon(0.01));
}

TEST_CASE("dropout: the mask is the same for any thread count, and neighbours are independent") {
  constexpr int64_t n = 200000;
  constexpr float p = 0.3f;
  Tensor x = Tensor::ones({n});
  std::vector<std::vector<float>> masks;
  for (const int threads : {1, 2, 3}) {
    set_num_threads(threads);
    Rng rng(23);
    masks.push_back(dropout(x, p, true, rng).to_vector());
  }
  set_num_threads(0);
  CHECK(masks[0] == masks[1]);
  CHECK(masks[0] == masks[2]);
  // Both of two neighbours kept: (1-p)² for independent draws; sd ≈ 0.001.
  int64_t both = 0;
  for (int64_t i = 0; i + 1 < n; ++i) both += masks[0][i] != 0 && masks[0][i + 1] != 0;
  CHECK(static_cast<double>(both) / (n - 1) == doctest::Approx((1.0 - p) * (1.0 - p)).epsilon(0.02));
  // Two calls on one rng draw different masks.
  Rng rng(23);
  const std::vector<float> first = dropout(x, p, true, rng).to_vector();
  CHECK(dropout(x, p, true, rng).to_vector() != first);
}

TEST_CASE("dropout: the gradient is the scaled mask and accumulates across calls") {
  Tensor x = Tensor::ones({50}, true);
  Rng rng(5);
  const Rng::State saved = rng.state();
  Tensor y = dropout(x, 0.5f, true, rng);
  const std::vector<float> mask = y.to_vector();  // x = 1, so y is the mask itself
  y.backward(Tensor::full({50}, 3.0f));
  rng.set_state(saved);
  dropout(x, 0.5f, true, rng).backward(Tensor::ones({50}));
  for (size_t i = 0; i < mask.size(); ++i) CHECK(x.grad().data()[i] == 4.0f * mask[i]);
}

TEST_CASE("dropout: NoGradGuard records no node") {
  Tensor x = Tensor::ones({2, 3}, true);
  Rng rng(1);
  NoGradGuard guard;
  Tensor y = dropout(x, 0.5f, true, rng);
  CHECK_FALSE(y.requires_grad());
  CHECK(y.grad_fn() == nullptr);
}

TEST_CASE("dropout: p outside [0, 1) is rejected, even in eval mode") {
  Tensor x = Tensor::ones({2});
  Rng rng(1);
  CHECK_THROWS_WITH_AS(dropout(x, 1.0f, true, rng), "dropout: probability p = 1 is outside [0, 1)",
                       Error);
  CHECK_THROWS_WITH_AS(dropout(x, -0.1f, false, rng), doctest::Contains("p = -0.1 is outside"),
                       Error);
  CHECK_THROWS_AS(dropout(x, std::numeric_limits<float>::quiet_NaN(), true, rng), Error);
}
