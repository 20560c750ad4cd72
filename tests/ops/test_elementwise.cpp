// Tests for src/ops/elementwise.cpp: broadcasting arithmetic, scalar ops, pow, masked_fill.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "qkv/error.h"
#include "qkv/ops.h"
#include "support/gradcheck.h"

using namespace qkv;
using qkv::testing::check_gradients;

namespace {

using BinaryOp = Tensor (*)(const Tensor&, const Tensor&);

struct NamedOp {
  const char* name;
  BinaryOp fn;
};

const NamedOp kBinaryOps[] = {{"add", add}, {"sub", sub}, {"mul", mul}, {"div", div}};

// Values in ±[0.5, 1.5]: away from 0 so that div's 1/b stays well conditioned.
Tensor signed_input(Shape shape, Rng& rng) {
  Tensor t = Tensor::uniform(shape, rng, 0.5f, 1.5f, true);
  for (int64_t i = 0; i < t.numel(); i += 2) t.data()[i] = -t.data()[i];
  return t;
}

std::vector<float> values(const Tensor& t) { return t.to_vector(); }

}  // namespace

TEST_CASE("elementwise: broadcast output has the larger shape") {
  CHECK(add(Tensor::ones({2, 3, 4}), Tensor::ones({4})).shape() == Shape{2, 3, 4});
  CHECK(add(Tensor::ones({4}), Tensor::ones({2, 3, 4})).shape() == Shape{2, 3, 4});
  CHECK(mul(Tensor::ones({3, 1}), Tensor::ones({1, 4})).shape() == Shape{3, 4});
  CHECK(sub(Tensor::ones({2, 1, 4}), Tensor::ones({3, 1})).shape() == Shape{2, 3, 4});
  CHECK(div(Tensor::ones({}), Tensor::ones({2, 3})).shape() == Shape{2, 3});
  CHECK(add(Tensor::ones({}), Tensor::ones({})).shape() == Shape{});
  CHECK(add(Tensor::ones({0, 3}), Tensor::ones({3})).shape() == Shape{0, 3});
}

TEST_CASE("elementwise: binary ops give hand-computed values under broadcasting") {
  Tensor a = Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor row = Tensor::from_vector({3}, {10, 20, 30});
  Tensor col = Tensor::from_vector({2, 1}, {2, 4});
  Tensor one = Tensor::from_vector({}, {2});
  CHECK(values(add(a, row)) == std::vector<float>{11, 22, 33, 14, 25, 36});
  CHECK(values(sub(row, a)) == std::vector<float>{9, 18, 27, 6, 15, 24});
  CHECK(values(mul(a, col)) == std::vector<float>{2, 4, 6, 16, 20, 24});
  CHECK(values(div(a, col)) == std::vector<float>{0.5f, 1, 1.5f, 1, 1.25f, 1.5f});
  CHECK(values(sub(one, a)) == std::vector<float>{1, 0, -1, -2, -3, -4});
  CHECK(values(div(one, col)) == std::vector<float>{1, 0.5f});
  CHECK(
      values(add(Tensor::from_vector({3, 1}, {1, 2, 3}), Tensor::from_vector({1, 2}, {10, 20}))) ==
      std::vector<float>{11, 21, 12, 22, 13, 23});
  CHECK(values(a + a) == std::vector<float>{2, 4, 6, 8, 10, 12});
  CHECK(values(-a) == std::vector<float>{-1, -2, -3, -4, -5, -6});
}

TEST_CASE("elementwise: binary gradients match finite differences for every broadcast case") {
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{2, 3}, {2, 3}},           // same shape
      {{2, 3}, {1}},              // one-element operand on the right
      {{}, {2, 3}},               // rank-0 operand on the left
      {{2, 3, 4}, {4}},           // trailing suffix
      {{4}, {2, 3, 4}},           // trailing suffix on the left
      {{2, 3, 4}, {3, 1}},        // middle dim kept, inner dim broadcast
      {{2, 3, 4}, {2, 1, 4}},     // middle dim broadcast
      {{3, 1}, {1, 4}},           // both operands broadcast
      {{2, 1, 3, 1}, {4, 1, 5}},  // rank 4, alternating
  };
  Rng rng(11);
  for (const auto& [sa, sb] : cases) {
    for (const NamedOp& op : kBinaryOps) {
      Tensor a = signed_input(sa, rng), b = signed_input(sb, rng);
      const std::string name = std::string(op.name) + " " + sa.str() + " x " + sb.str();
      check_gradients(name, [&] { return op.fn(a, b); }, {a, b});
    }
  }
}

TEST_CASE("elementwise: an operand that needs no grad gets none while the other does") {
  Rng rng(3);
  Tensor a = signed_input({2, 3}, rng), b = Tensor::from_vector({3}, {1, 2, 4});
  mul(a, b).backward(Tensor::ones({2, 3}));
  CHECK_FALSE(b.grad().defined());
  CHECK(values(a.grad()) == std::vector<float>{1, 2, 4, 1, 2, 4});
}

TEST_CASE("elementwise: a tensor used twice gets both gradients") {
  Tensor x = Tensor::from_vector({3}, {1, -2, 3}, true);
  mul(x, x).backward(Tensor::ones({3}));
  CHECK(values(x.grad()) == std::vector<float>{2, -4, 6});  // d(x²)/dx = 2x
  x.zero_grad();
  add(x, x).backward(Tensor::ones({3}));
  CHECK(values(x.grad()) == std::vector<float>{2, 2, 2});
  x.zero_grad();
  sub(x, x).backward(Tensor::ones({3}));
  CHECK(values(x.grad()) == std::vector<float>{0, 0, 0});
  x.zero_grad();
  Tensor row = Tensor::from_vector({3}, {1, 2, 3}, true);
  add(mul(Tensor::ones({2, 3}), row), row).backward(Tensor::ones({2, 3}));
  CHECK(values(row.grad()) == std::vector<float>{4, 4, 4});  // 2 rows + 2 rows
}

TEST_CASE("elementwise: large broadcasts take the threaded path and reduce exactly") {
  // 64·512 = 32768 elements: above the parallel threshold.
  Rng rng(5);
  Tensor a = Tensor::randn({64, 512}, rng, 1.0f, true);
  Tensor bias = Tensor::randn({512}, rng, 1.0f, true);
  Tensor scale = Tensor::randn({64, 1}, rng, 1.0f, true);
  Tensor seed = Tensor::randn({64, 512}, rng);
  Tensor y = mul(add(a, bias), scale);
  for (int64_t r = 0; r < 64; r += 21)
    for (int64_t c = 0; c < 512; c += 97)
      CHECK(y.at({r, c}) == (a.at({r, c}) + bias.at({c})) * scale.at({r, 0}));
  y.backward(seed);
  for (int64_t c = 0; c < 512; c += 31) {
    double ref = 0;
    for (int64_t r = 0; r < 64; ++r) ref += double(seed.at({r, c})) * scale.at({r, 0});
    CHECK(bias.grad().at({c}) == doctest::Approx(ref).epsilon(1e-5));
  }
  for (int64_t r = 0; r < 64; r += 13) {
    double ref = 0;
    for (int64_t c = 0; c < 512; ++c)
      ref += double(seed.at({r, c})) * (a.at({r, c}) + bias.at({c}));
    CHECK(scale.grad().at({r, 0}) == doctest::Approx(ref).epsilon(1e-5));
  }
  const std::vector<float> first = values(bias.grad());
  bias.zero_grad();
  mul(add(a, bias), scale).backward(seed);
  CHECK(values(bias.grad()) == first);  // bitwise repeatable for a fixed thread count
}

TEST_CASE("elementwise: a large one-element operand gets the whole sum as its gradient") {
  Tensor x = Tensor::ones({1 << 15});
  Tensor s = Tensor::from_vector({}, {3}, true);
  Tensor y = mul(x, s);
  CHECK(y.at({100}) == 3.0f);
  y.backward(Tensor::full({1 << 15}, 0.5f));
  CHECK(s.grad().item() == 16384.0f);
}

TEST_CASE("elementwise: shapes that do not broadcast are rejected naming op and shapes") {
  CHECK_THROWS_WITH_AS(add(Tensor::ones({2, 3}), Tensor::ones({4})),
                       "add: shapes [2, 3] and [4] do not broadcast", Error);
  CHECK_THROWS_WITH_AS(mul(Tensor::ones({2, 3, 4}), Tensor::ones({3, 2})),
                       "mul: shapes [2, 3, 4] and [3, 2] do not broadcast", Error);
  CHECK_THROWS_WITH_AS(sub(Tensor::ones({5}), Tensor::ones({2, 3})),
                       "sub: shapes [5] and [2, 3] do not broadcast", Error);
  CHECK_THROWS_WITH_AS(div(Tensor::ones({2, 1, 3}), Tensor::ones({2, 2})),
                       "div: shapes [2, 1, 3] and [2, 2] do not broadcast", Error);
}

TEST_CASE("elementwise: NoGradGuard records no node") {
  Tensor a = Tensor::ones({2, 3}, true), b = Tensor::ones({3}, true);
  NoGradGuard guard;
  for (const Tensor& y : {add(a, b), sub(a, b), mul(a, b), div(a, b), neg(a), add_scalar(a, 1),
                          mul_scalar(a, 2), pow(a, 2), masked_fill(a, b, 0)}) {
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
  }
}

TEST_CASE("neg, add_scalar, mul_scalar: values and gradients") {
  Tensor x = Tensor::from_vector({3}, {1, -2, 0.5f});
  CHECK(values(neg(x)) == std::vector<float>{-1, 2, -0.5f});
  CHECK(values(add_scalar(x, 2)) == std::vector<float>{3, 0, 2.5f});
  CHECK(values(mul_scalar(x, -3)) == std::vector<float>{-3, 6, -1.5f});
  Rng rng(8);
  Tensor g = signed_input({2, 5}, rng);
  check_gradients("neg", [&] { return neg(g); }, {g});
  check_gradients("add_scalar", [&] { return add_scalar(g, 1.5f); }, {g});
  check_gradients("mul_scalar", [&] { return mul_scalar(g, -2.5f); }, {g});
  g.zero_grad();
  add(mul_scalar(g, 3), neg(g)).backward(Tensor::ones({2, 5}));
  CHECK(values(g.grad()) == std::vector<float>(10, 2.0f));
}

TEST_CASE("pow: values and gradients match finite differences") {
  Tensor x = Tensor::from_vector({3}, {4, 0.25f, 9});
  CHECK(values(pow(x, 0.5f)) == std::vector<float>{2, 0.5f, 3});
  CHECK(values(pow(x, -1)) == std::vector<float>{0.25f, 4, 1.0f / 9});
  CHECK(values(pow(Tensor::from_vector({2}, {-2, 3}), 3)) == std::vector<float>{-8, 27});
  Rng rng(9);
  Tensor s = signed_input({2, 3}, rng);
  for (float p : {2.0f, 3.0f, -1.0f})
    check_gradients("pow " + std::to_string(p), [&] { return pow(s, p); }, {s});
  Tensor pos = Tensor::uniform({2, 3}, rng, 0.5f, 2.0f, true);
  check_gradients("pow 0.5", [&] { return pow(pos, 0.5f); }, {pos});
  check_gradients("pow 1.7", [&] { return pow(pos, 1.7f); }, {pos});
}

TEST_CASE("pow: exponent 0 has zero gradient, even at x = 0") {
  Tensor x = Tensor::from_vector({2}, {0, 2}, true);
  pow(x, 0).backward(Tensor::ones({2}));
  CHECK(values(x.grad()) == std::vector<float>{0, 0});
}

TEST_CASE("pow: a non-integer exponent of a negative value is rejected") {
  Tensor x = Tensor::from_vector({3}, {1, -2, 3});
  CHECK_THROWS_WITH_AS(pow(x, 0.5f), doctest::Contains("pow: exponent 0.5 is not an integer"),
                       Error);
  CHECK_THROWS_WITH_AS(pow(x, 0.5f), doctest::Contains("has -2 at element 1"), Error);
  CHECK(values(pow(x, 2)) == std::vector<float>{1, 4, 9});
}

TEST_CASE("masked_fill: fills where the broadcast mask is nonzero") {
  Tensor x = Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor full_mask = Tensor::from_vector({2, 3}, {0, 1, 0, 1, 0, 0});
  CHECK(values(masked_fill(x, full_mask, -9)) == std::vector<float>{1, -9, 3, -9, 5, 6});
  Tensor row_mask = Tensor::from_vector({3}, {0, 0, 2});
  CHECK(values(masked_fill(x, row_mask, -INFINITY)) ==
        std::vector<float>{1, 2, -INFINITY, 4, 5, -INFINITY});
  Tensor col_mask = Tensor::from_vector({2, 1}, {1, 0});
  CHECK(values(masked_fill(x, col_mask, 0)) == std::vector<float>{0, 0, 0, 4, 5, 6});
  CHECK(values(masked_fill(x, Tensor::from_vector({}, {0}), 7)) == values(x));
  CHECK(values(masked_fill(x, Tensor::from_vector({}, {1}), 7)) == std::vector<float>(6, 7));
}

TEST_CASE("masked_fill: gradient passes where mask is 0 and is zero elsewhere") {
  Rng rng(4);
  Tensor causal = Tensor::from_vector({3, 4}, {0, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 1});
  const std::vector<Shape> mask_shapes = {{2, 3, 4}, {3, 4}, {2, 1, 4}, {3, 1}, {}};
  for (const Shape& ms : mask_shapes) {
    Tensor x = signed_input({2, 3, 4}, rng);
    Tensor mask = Tensor::uniform(ms, rng, 0, 1);
    for (int64_t i = 0; i < mask.numel(); ++i) mask.data()[i] = mask.data()[i] < 0.5f ? 0 : 1;
    check_gradients("masked_fill mask " + ms.str(), [&] { return masked_fill(x, mask, -5); }, {x});
  }
  Tensor x = signed_input({2, 3, 4}, rng);
  Tensor mask = causal;
  mask.set_requires_grad(true);
  Tensor seed = Tensor::randn({2, 3, 4}, rng);
  masked_fill(x, mask, 0).backward(seed);
  CHECK_FALSE(mask.grad().defined());
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < 3; ++t)
      for (int64_t c = 0; c < 4; ++c)
        CHECK(x.grad().at({b, t, c}) == (causal.at({t, c}) != 0 ? 0.0f : seed.at({b, t, c})));
}

TEST_CASE("masked_fill: a mask that does not broadcast to x is rejected") {
  CHECK_THROWS_WITH_AS(masked_fill(Tensor::ones({2, 3}), Tensor::ones({5}), 0),
                       "masked_fill: shapes [2, 3] and [5] do not broadcast", Error);
  CHECK_THROWS_WITH_AS(masked_fill(Tensor::ones({3}), Tensor::ones({2, 3}), 0),
                       "masked_fill: mask of shape [2, 3] does not broadcast to x of shape [3]",
                       Error);
}
