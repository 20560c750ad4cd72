// Tests for src/ops/reshape.cpp: reshape/view, transpose, permute, narrow, concat, split.
#include <doctest/doctest.h>

#include <array>
#include <vector>

#include "qkv/error.h"
#include "qkv/ops.h"
#include "support/gradcheck.h"

using namespace qkv;
using qkv::testing::check_gradients;

namespace {

Tensor param(Shape shape, Rng& rng) { return Tensor::randn(shape, rng, 1.0f, true); }

// 0, 1, 2, ... so a moved element is easy to spot.
Tensor iota(Shape shape, bool requires_grad = false) {
  std::vector<float> v(static_cast<size_t>(shape.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i);
  return Tensor::from_vector(shape, v, requires_grad);
}

}  // namespace

TEST_CASE("reshape: shares storage with its input and infers a -1 extent") {
  Tensor x = iota({2, 3, 4});
  Tensor y = reshape(x, {4, -1});
  CHECK(y.shape() == Shape{4, 6});
  CHECK(y.data() == x.data());
  Tensor v = view(x, Shape{24});
  CHECK(v.data() == x.data());
  CHECK(view(x, {-1}).shape() == Shape{24});
  x.data()[5] = 100;
  CHECK(y.at({0, 5}) == 100);
}

TEST_CASE("reshape: gradients match finite differences") {
  Rng rng(1);
  Tensor x = param({2, 3, 4}, rng);
  check_gradients("reshape", [&] { return reshape(x, {3, -1, 2}); }, {x});
  check_gradients("view", [&] { return view(x, Shape{6, 4}); }, {x});
}

TEST_CASE("reshape: bad shapes are rejected naming both shapes") {
  Tensor x = iota({2, 3});
  CHECK_THROWS_WITH_AS(reshape(x, {4, 2}), doctest::Contains("reshape: cannot view [2, 3]"), Error);
  CHECK_THROWS_WITH_AS(view(x, Shape{7}), doctest::Contains("view: cannot view [2, 3]"), Error);
  CHECK_THROWS_WITH_AS(reshape(x, {-1, -1}), doctest::Contains("more than one -1"), Error);
  CHECK_THROWS_WITH_AS(reshape(x, {4, -1}), doctest::Contains("[4, -1]"), Error);
  CHECK_THROWS_WITH_AS(reshape(x, {2, -3}), doctest::Contains("bad extent -3"), Error);
}

TEST_CASE("transpose: swaps two dims, negative dims count from the end") {
  Tensor x = iota({2, 3});
  Tensor y = transpose(x, 0, -1);
  REQUIRE(y.shape() == Shape{3, 2});
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j) CHECK(y.at({j, i}) == x.at({i, j}));
  CHECK(y.data() != x.data());
}

TEST_CASE("transpose: gradients match finite differences") {
  Rng rng(2);
  Tensor x = param({2, 3, 4}, rng);
  check_gradients("transpose(1, 2)", [&] { return transpose(x, 1, 2); }, {x});
  check_gradients("transpose(0, -1)", [&] { return transpose(x, 0, -1); }, {x});
}

TEST_CASE("permute: rank 4 moves every element to its permuted index") {
  Tensor x = iota({2, 3, 4, 5});
  const std::array<int, 4> dims{2, 0, 3, 1};
  Tensor y = permute(x, dims);
  REQUIRE(y.shape() == Shape{4, 2, 5, 3});
  for (int64_t a = 0; a < 2; ++a)
    for (int64_t b = 0; b < 3; ++b)
      for (int64_t c = 0; c < 4; ++c)
        for (int64_t d = 0; d < 5; ++d) CHECK(y.at({c, a, d, b}) == x.at({a, b, c, d}));
}

TEST_CASE("permute: gradients match finite differences") {
  Rng rng(3);
  Tensor x = param({2, 3, 2, 4}, rng);
  const std::array<int, 4> dims{3, 1, 0, 2};
  check_gradients("permute rank 4", [&] { return permute(x, dims); }, {x});
  Tensor z = param({3, 4}, rng);
  const std::array<int, 2> swap{1, 0};
  check_gradients("permute rank 2", [&] { return permute(z, swap); }, {z});
}

TEST_CASE("transpose and permute: bad dims are rejected naming op and shape") {
  Tensor x = iota({2, 3});
  CHECK_THROWS_WITH_AS(transpose(x, 0, 2),
                       doctest::Contains("transpose: dim 2 is out of range for shape [2, 3]"),
                       Error);
  const std::array<int, 2> repeated{0, 0};
  CHECK_THROWS_WITH_AS(permute(x, repeated), doctest::Contains("permute: dims (0, 0)"), Error);
  const std::array<int, 3> too_many{0, 1, 2};
  CHECK_THROWS_WITH_AS(permute(x, too_many), doctest::Contains("[2, 3]"), Error);
}

TEST_CASE("narrow: copies a slice of the middle dim") {
  Tensor x = iota({2, 4, 3});
  Tensor y = narrow(x, 1, 1, 2);
  REQUIRE(y.shape() == Shape{2, 2, 3});
  for (int64_t a = 0; a < 2; ++a)
    for (int64_t j = 0; j < 2; ++j)
      for (int64_t c = 0; c < 3; ++c) CHECK(y.at({a, j, c}) == x.at({a, 1 + j, c}));
}

TEST_CASE("narrow: gradients match finite differences") {
  Rng rng(4);
  Tensor x = param({2, 5, 3}, rng);
  check_gradients("narrow middle dim", [&] { return narrow(x, 1, 1, 3); }, {x});
  check_gradients("narrow last dim", [&] { return narrow(x, -1, 2, 1); }, {x});
}

TEST_CASE("narrow: a slice outside the dim is rejected") {
  Tensor x = iota({2, 4});
  CHECK_THROWS_WITH_AS(narrow(x, 1, 3, 2),
                       doctest::Contains("narrow: [3, 5) is outside dim 1 of shape [2, 4]"), Error);
  CHECK_THROWS_WITH_AS(narrow(x, 2, 0, 1), doctest::Contains("narrow: dim 2"), Error);
}

TEST_CASE("concat: joins along dim 0 and the last dim") {
  Tensor a = iota({1, 2}), b = Tensor::from_vector({2, 2}, {10, 11, 12, 13});
  CHECK(concat({a, b}, 0).to_vector() == std::vector<float>{0, 1, 10, 11, 12, 13});
  Tensor c = Tensor::from_vector({1, 1}, {7});
  CHECK(concat({a, c}, -1).to_vector() == std::vector<float>{0, 1, 7});
}

TEST_CASE("concat: gradients match finite differences") {
  Rng rng(5);
  Tensor a = param({2, 3, 2}, rng), b = param({1, 3, 2}, rng), c = param({3, 3, 2}, rng);
  check_gradients("concat dim 0", [&] { return concat({a, b, c}, 0); }, {a, b, c});
  Tensor d = param({2, 3, 1}, rng), e = param({2, 3, 4}, rng);
  check_gradients("concat last dim", [&] { return concat({a, d, e}, -1); }, {a, d, e});
}

TEST_CASE("concat: an input used twice gets both gradients") {
  Rng rng(6);
  Tensor x = param({2, 3}, rng);
  check_gradients("concat {x, x}", [&] { return concat({x, x}, 1); }, {x});
  x.zero_grad();
  Tensor y = concat({x, x}, 0);
  y.backward(Tensor::ones(y.shape()));
  CHECK(x.grad().to_vector() == std::vector<float>(6, 2.0f));
}

TEST_CASE("concat: mismatched shapes are rejected naming both") {
  Tensor a = iota({2, 3}), b = iota({2, 4});
  CHECK_THROWS_WITH_AS(concat({a, b}, 0),
                       doctest::Contains("concat: input 1 has shape [2, 4] and input 0 has [2, 3]"),
                       Error);
  CHECK_THROWS_WITH_AS(concat({}, 0), doctest::Contains("concat: no tensors"), Error);
  CHECK_THROWS_WITH_AS(concat({a, Tensor()}, 0),
                       doctest::Contains("concat: input 1 is an undefined tensor"), Error);
  CHECK_THROWS_WITH_AS(concat({a, a}, 3), doctest::Contains("concat: dim 3"), Error);
}

TEST_CASE("split: pieces hold consecutive slices and each records its own node") {
  Tensor x = iota({2, 5}, true);
  const std::array<int64_t, 2> sizes{2, 3};
  std::vector<Tensor> parts = split(x, sizes, -1);
  REQUIRE(parts.size() == 2);
  CHECK(parts[0].to_vector() == std::vector<float>{0, 1, 5, 6});
  CHECK(parts[1].to_vector() == std::vector<float>{2, 3, 4, 7, 8, 9});
  REQUIRE(parts[0].grad_fn() != nullptr);
  REQUIRE(parts[1].grad_fn() != nullptr);
  CHECK(parts[0].grad_fn() != parts[1].grad_fn());
  parts[1].backward(Tensor::ones(parts[1].shape()));
  CHECK(x.grad().to_vector() == std::vector<float>{0, 0, 1, 1, 1, 0, 0, 1, 1, 1});
}

TEST_CASE("split: gradients match finite differences along dim 0 and the last dim") {
  Rng rng(7);
  Tensor x = param({4, 3, 5}, rng);
  const std::array<int64_t, 3> rows{1, 0, 3};
  const std::array<int64_t, 2> cols{2, 3};
  for (size_t k = 0; k < rows.size(); ++k)
    check_gradients("split dim 0 piece", [&] { return split(x, rows, 0)[k]; }, {x});
  for (size_t k = 0; k < cols.size(); ++k)
    check_gradients("split last dim piece", [&] { return split(x, cols, -1)[k]; }, {x});
  // Both pieces feed one output, so x's gradient is the sum of two nodes' contributions.
  check_gradients("split pieces swapped",
                  [&] {
                    std::vector<Tensor> p = split(x, cols, 2);
                    return concat({p[1], p[0]}, 2);
                  },
                  {x});
}

TEST_CASE("split: sizes that do not sum to the extent are rejected") {
  Tensor x = iota({3, 5});
  const std::array<int64_t, 2> sizes{2, 2};
  CHECK_THROWS_WITH_AS(split(x, sizes, 1),
                       doctest::Contains("split: sizes (2, 2) must be non-negative and sum to 5"),
                       Error);
  const std::array<int64_t, 2> negative{6, -1};
  CHECK_THROWS_WITH_AS(split(x, negative, 1), doctest::Contains("split: sizes (6, -1)"), Error);
}

TEST_CASE("reshape family: NoGradGuard records no node") {
  Rng rng(8);
  Tensor x = param({2, 3, 4}, rng);
  NoGradGuard guard;
  const std::array<int, 3> dims{2, 0, 1};
  const std::array<int64_t, 2> sizes{1, 2};
  std::vector<Tensor> outs{reshape(x, {6, 4}), view(x, Shape{24}), transpose(x, 0, 1),
                           permute(x, dims),   narrow(x, 1, 0, 2), concat({x, x}, 0)};
  for (const Tensor& p : split(x, sizes, 1)) outs.push_back(p);
  for (const Tensor& y : outs) {
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
  }
}
