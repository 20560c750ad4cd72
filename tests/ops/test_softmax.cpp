// softmax and log_softmax over the last dim.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "qkv/error.h"
#include "qkv/ops.h"
#include "support/gradcheck.h"

using namespace qkv;
using qkv::testing::check_gradients;
using qkv::testing::GradcheckOptions;

TEST_CASE("softmax: gradients match finite differences") {
  Rng rng(7);
  SUBCASE("rank 2") {
    Tensor x = Tensor::randn({4, 6}, rng, 1.0f, true);
    check_gradients(
        "softmax", [&] { return softmax(x); }, {x}, GradcheckOptions{.four_point = true});
  }
  SUBCASE("rank 3") {
    Tensor x = Tensor::randn({2, 3, 5}, rng, 2.0f, true);
    check_gradients(
        "softmax", [&] { return softmax(x); }, {x}, GradcheckOptions{.four_point = true});
  }
}

TEST_CASE("log_softmax: gradients match finite differences") {
  Rng rng(8);
  SUBCASE("rank 2") {
    Tensor x = Tensor::randn({4, 6}, rng, 1.0f, true);
    check_gradients(
        "log_softmax", [&] { return log_softmax(x); }, {x}, GradcheckOptions{.four_point = true});
  }
  SUBCASE("rank 3") {
    Tensor x = Tensor::randn({2, 3, 5}, rng, 2.0f, true);
    check_gradients(
        "log_softmax", [&] { return log_softmax(x); }, {x}, GradcheckOptions{.four_point = true});
  }
}

TEST_CASE("softmax: known values for [1, 2, 3]") {
  const std::vector<float> y = softmax(Tensor::from_vector({3}, {1, 2, 3})).to_vector();
  CHECK(y[0] == doctest::Approx(0.09003057f));
  CHECK(y[1] == doctest::Approx(0.24472847f));
  CHECK(y[2] == doctest::Approx(0.66524096f));
}

TEST_CASE("log_softmax: known values for [1, 2, 3] are the logs of softmax's") {
  const std::vector<float> y = log_softmax(Tensor::from_vector({3}, {1, 2, 3})).to_vector();
  CHECK(y[0] == doctest::Approx(std::log(0.09003057)));
  CHECK(y[1] == doctest::Approx(std::log(0.24472847)));
  CHECK(y[2] == doctest::Approx(std::log(0.66524096)));
}

TEST_CASE("softmax: rows sum to 1 and stay finite with large inputs") {
  Tensor x = Tensor::from_vector({2, 3}, {1000, 1001, 1002, -1000, 0, 1000});
  Tensor y = softmax(x);
  for (int64_t r = 0; r < 2; ++r) {
    double s = 0;
    for (int64_t c = 0; c < 3; ++c) {
      CHECK(std::isfinite(y.at({r, c})));
      s += y.at({r, c});
    }
    CHECK(s == doctest::Approx(1.0));
  }
  // Shifting a row by a constant does not change its softmax.
  CHECK(y.at({0, 0}) == doctest::Approx(0.09003057f));
  CHECK(y.at({0, 2}) == doctest::Approx(0.66524096f));
  CHECK(y.at({1, 2}) == doctest::Approx(1.0f));
}

TEST_CASE("log_softmax: stays finite with large inputs") {
  Tensor y = log_softmax(Tensor::from_vector({2}, {1000, 0}));
  CHECK(y.at({0}) == doctest::Approx(0.0f));
  CHECK(y.at({1}) == doctest::Approx(-1000.0f));
}

TEST_CASE("softmax: gradients accumulate across backward calls") {
  Rng rng(3);
  Tensor x = Tensor::randn({3, 4}, rng, 1.0f, true);
  Tensor seed = Tensor::randn({3, 4}, rng);
  softmax(x).backward(seed);
  const std::vector<float> once = x.grad().to_vector();
  softmax(x).backward(seed);
  log_softmax(x).backward(seed);
  const std::vector<float> total = x.grad().to_vector();
  x.zero_grad();
  log_softmax(x).backward(seed);
  const std::vector<float> log_once = x.grad().to_vector();
  for (size_t i = 0; i < total.size(); ++i)
    CHECK(total[i] == doctest::Approx(2 * once[i] + log_once[i]));
}

TEST_CASE("softmax: NoGradGuard records no node") {
  Tensor x = Tensor::ones({2, 3}, true);
  NoGradGuard guard;
  for (const Tensor& y : {softmax(x), log_softmax(x)}) {
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
  }
}

TEST_CASE("softmax: a scalar input is rejected with its shape") {
  CHECK_THROWS_WITH_AS(softmax(Tensor::ones({})), doctest::Contains("softmax: input of shape []"),
                       Error);
  CHECK_THROWS_WITH_AS(log_softmax(Tensor::ones({2, 0})),
                       doctest::Contains("log_softmax: input of shape [2, 0]"), Error);
}
