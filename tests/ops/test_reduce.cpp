// Tests for src/ops/reduce.cpp: sum, mean (all and per dim), max_last, argmax_last.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "qkv/error.h"
#include "qkv/ops.h"
#include "qkv/runtime.h"
#include "support/gradcheck.h"

using namespace qkv;
using qkv::testing::check_gradients;

TEST_CASE("sum, mean: hand-computed values and shapes") {
  Tensor x = Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, 6});
  CHECK(sum(x).shape() == Shape{});
  CHECK(sum(x).item() == 21.0f);
  CHECK(mean(x).item() == 3.5f);
  CHECK(sum(x, 0).to_vector() == std::vector<float>{5, 7, 9});
  CHECK(sum(x, 0).shape() == Shape{3});
  CHECK(sum(x, 1).to_vector() == std::vector<float>{6, 15});
  CHECK(sum(x, -1, true).shape() == Shape{2, 1});
  CHECK(mean(x, 0, true).shape() == Shape{1, 3});
  CHECK(mean(x, 0).to_vector() == std::vector<float>{2.5f, 3.5f, 4.5f});
  CHECK(mean(x, -1).to_vector() == std::vector<float>{2, 5});
  Tensor y = Tensor::from_vector({2, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  CHECK(sum(y, 1).to_vector() == std::vector<float>{4, 6, 12, 14});
  CHECK(sum(y, 1).shape() == Shape{2, 2});
  CHECK(sum(Tensor::from_vector({}, {4})).item() == 4.0f);
  CHECK(sum(Tensor::zeros({0, 3})).item() == 0.0f);
}

TEST_CASE("sum, mean: gradients match finite differences") {
  Rng rng(31);
  Tensor x = Tensor::randn({2, 3, 4}, rng, 1.0f, true);
  check_gradients("sum", [&] { return sum(x); }, {x});
  check_gradients("mean", [&] { return mean(x); }, {x});
  for (int dim : {0, 1, 2, -1}) {
    for (bool keep : {false, true}) {
      const std::string tag = " dim " + std::to_string(dim) + (keep ? " keepdim" : "");
      check_gradients("sum" + tag, [&] { return sum(x, dim, keep); }, {x});
      check_gradients("mean" + tag, [&] { return mean(x, dim, keep); }, {x});
    }
  }
  Tensor r4 = Tensor::randn({2, 3, 2, 3}, rng, 1.0f, true);
  check_gradients("sum rank 4 dim 2", [&] { return sum(r4, 2); }, {r4});
}

TEST_CASE("sum: accumulates in double, so a long sum of 0.1 stays exact to float precision") {
  const int64_t n = int64_t{1} << 20;
  Tensor x = Tensor::full({n}, 0.1f);
  const double ref = double(0.1f) * double(n);
  CHECK(sum(x).item() == static_cast<float>(ref));
  CHECK(sum(Tensor::full({1024, 1024}, 0.1f), 0).to_vector()[0] ==
        static_cast<float>(double(0.1f) * 1024));
  CHECK(mean(x).item() == 0.1f);
  CHECK(sum(Tensor::full({2, 1 << 19}, 0.1f), 1).to_vector()[1] ==
        static_cast<float>(double(0.1f) * (1 << 19)));
}

TEST_CASE("sum: results do not depend on the thread count") {
  Rng rng(32);
  Tensor x = Tensor::randn({64, 300, 3}, rng);
  set_num_threads(1);
  const float one = sum(x).item();
  const std::vector<float> one_mid = sum(x, 1).to_vector(), one_last = sum(x, -1).to_vector();
  set_num_threads(2);
  const float two = sum(x).item();
  const std::vector<float> two_mid = sum(x, 1).to_vector(), two_last = sum(x, -1).to_vector();
  set_num_threads(0);
  CHECK(one == two);
  CHECK(one_mid == two_mid);
  CHECK(one_last == two_last);
}

TEST_CASE("sum, mean: a tensor used twice gets both gradients") {
  Tensor x = Tensor::from_vector({2, 2}, {1, 2, 3, 4}, true);
  add(sum(x), mean(x)).backward();
  CHECK(x.grad().to_vector() == std::vector<float>(4, 1.25f));
  x.zero_grad();
  add(sum(x, 0), sum(x, 0)).backward(Tensor::from_vector({2}, {1, 10}));
  CHECK(x.grad().to_vector() == std::vector<float>{2, 20, 2, 20});
}

TEST_CASE("sum, mean: NoGradGuard records no node") {
  Tensor x = Tensor::ones({2, 3}, true);
  NoGradGuard guard;
  for (const Tensor& y : {sum(x), mean(x), sum(x, 0), mean(x, 1, true)}) {
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
  }
}

TEST_CASE("sum, mean: bad dims and empty means are rejected") {
  Tensor x = Tensor::ones({2, 3});
  CHECK_THROWS_WITH_AS(sum(x, 2), "sum: dim 2 is out of range for shape [2, 3]", Error);
  CHECK_THROWS_WITH_AS(mean(x, -3), "mean: dim -3 is out of range for shape [2, 3]", Error);
  CHECK_THROWS_WITH_AS(sum(Tensor::ones({}), 0), "sum: dim 0 is out of range for shape []", Error);
  CHECK_THROWS_WITH_AS(mean(Tensor::ones({0, 3})), "mean: tensor of shape [0, 3] has no elements",
                       Error);
  CHECK_THROWS_WITH_AS(mean(Tensor::ones({2, 0}), 1), "mean: dim 1 of shape [2, 0] is empty",
                       Error);
}

TEST_CASE("max_last, argmax_last: values, first index on ties, NaN wins") {
  Tensor x = Tensor::from_vector({2, 2, 3}, {1, 5, 2, -3, -1, -2, 4, 4, 0, 0, 7, 7});
  CHECK(max_last(x).shape() == Shape{2, 2});
  CHECK(max_last(x).to_vector() == std::vector<float>{5, -1, 4, 7});
  CHECK(argmax_last(x).to_vector() == std::vector<float>{1, 1, 0, 1});
  Tensor n = Tensor::from_vector({2, 3}, {1, NAN, 3, NAN, 5, NAN});
  CHECK(std::isnan(max_last(n).to_vector()[0]));
  CHECK(argmax_last(n).to_vector() == std::vector<float>{1, 0});
  CHECK(max_last(Tensor::from_vector({3}, {2, 9, 1})).shape() == Shape{});
  CHECK(argmax_last(Tensor::from_vector({3}, {2, 9, 1})).item() == 1.0f);
}

TEST_CASE("max_last, argmax_last: large inputs take the threaded path") {
  Rng rng(33);
  Tensor x = Tensor::randn({256, 100}, rng);
  const std::vector<float> m = max_last(x).to_vector(), a = argmax_last(x).to_vector();
  for (int64_t r = 0; r < 256; ++r) {
    int64_t best = 0;
    for (int64_t c = 1; c < 100; ++c)
      if (x.at({r, c}) > x.at({r, best})) best = c;
    CHECK(a[r] == float(best));
    CHECK(m[r] == x.at({r, best}));
  }
}

TEST_CASE("max_last, argmax_last: record nothing even when the input requires grad") {
  Tensor x = Tensor::ones({2, 3}, true);
  for (const Tensor& y : {max_last(x), argmax_last(x)}) {
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
  }
}

TEST_CASE("max_last, argmax_last: a rank-0 or empty last dim is rejected") {
  CHECK_THROWS_WITH_AS(max_last(Tensor::ones({})),
                       "max_last: needs a non-empty last dim, got shape []", Error);
  CHECK_THROWS_WITH_AS(argmax_last(Tensor::ones({2, 0})),
                       "argmax_last: needs a non-empty last dim, got shape [2, 0]", Error);
}
