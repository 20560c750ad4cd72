// Tests for src/ops/activation.cpp: exp, log, tanh, sigmoid, relu, gelu (erf and tanh forms).
#include <doctest/doctest.h>

#include <cmath>
#include <numbers>
#include <vector>

#include "qkv/ops.h"
#include "support/gradcheck.h"

using namespace qkv;
using qkv::testing::check_gradients;

TEST_CASE("activations: hand-computed values") {
  Tensor x = Tensor::from_vector({3}, {-1, 0, 1});
  std::vector<float> e = exp(x).to_vector();
  CHECK(e[0] == doctest::Approx(0.36787944));
  CHECK(e[1] == 1.0f);
  CHECK(e[2] == doctest::Approx(2.71828183));
  CHECK(log(Tensor::from_vector({2}, {1, std::numbers::e_v<float>})).to_vector()[1] ==
        doctest::Approx(1.0));
  CHECK(tanh(x).to_vector()[2] == doctest::Approx(0.76159416));
  CHECK(sigmoid(x).to_vector()[0] == doctest::Approx(0.26894142));
  CHECK(sigmoid(x).to_vector()[1] == 0.5f);
  CHECK(relu(x).to_vector() == std::vector<float>{0, 0, 1});
  std::vector<float> g = gelu(x).to_vector();
  CHECK(g[0] == doctest::Approx(-0.15865525));
  CHECK(g[1] == 0.0f);
  CHECK(g[2] == doctest::Approx(0.84134475));
  std::vector<float> gt = gelu(x, GeluApprox::tanh).to_vector();
  CHECK(gt[0] == doctest::Approx(-0.15880801));
  CHECK(gt[2] == doctest::Approx(0.84119199));
}

TEST_CASE("sigmoid: saturates without overflow at large |x|") {
  std::vector<float> s = sigmoid(Tensor::from_vector({2}, {-100, 100})).to_vector();
  CHECK(s[0] >= 0.0f);
  CHECK(s[0] < 1e-40f);
  CHECK(s[1] == 1.0f);
}

TEST_CASE("activations: gradients match finite differences") {
  Rng rng(21);
  Tensor x = Tensor::uniform({3, 5}, rng, -2.0f, 2.0f, true);
  Tensor pos = Tensor::uniform({3, 5}, rng, 0.2f, 3.0f, true);
  check_gradients("exp", [&] { return exp(x); }, {x});
  check_gradients("log", [&] { return log(pos); }, {pos});
  check_gradients("tanh", [&] { return tanh(x); }, {x});
  check_gradients("sigmoid", [&] { return sigmoid(x); }, {x});
  check_gradients("gelu", [&] { return gelu(x); }, {x});
  check_gradients("gelu tanh", [&] { return gelu(x, GeluApprox::tanh); }, {x});
}

TEST_CASE("relu: gradients match finite differences away from the kink") {
  // relu has a kink at 0: a central difference straddling it averages slopes 0 and 1. Inputs
  // have |x| >= 0.1, far beyond the gradcheck eps of 1e-3, so no difference straddles it.
  Rng rng(22);
  Tensor x = Tensor::uniform({4, 6}, rng, 0.1f, 2.0f, true);
  for (int64_t i = 0; i < x.numel(); i += 2) x.data()[i] = -x.data()[i];
  check_gradients("relu", [&] { return relu(x); }, {x});
}

TEST_CASE("relu: gradient at exactly 0 is 0, as in PyTorch") {
  Tensor x = Tensor::from_vector({3}, {-1, 0, 2}, true);
  relu(x).backward(Tensor::ones({3}));
  CHECK(x.grad().to_vector() == std::vector<float>{0, 0, 1});
}

TEST_CASE("activations: a tensor used twice gets both gradients") {
  Tensor x = Tensor::from_vector({2}, {0.5f, -1}, true);
  add(exp(x), exp(x)).backward(Tensor::ones({2}));
  CHECK(x.grad().at({0}) == doctest::Approx(2 * std::exp(0.5)));
  CHECK(x.grad().at({1}) == doctest::Approx(2 * std::exp(-1.0)));
  x.zero_grad();
  mul(tanh(x), x).backward(Tensor::ones({2}));  // d(x·tanh x) = tanh x + x(1 - tanh² x)
  const double t = std::tanh(0.5);
  CHECK(x.grad().at({0}) == doctest::Approx(t + 0.5 * (1 - t * t)));
}

TEST_CASE("activations: large inputs take the threaded path with the same values") {
  Rng rng(23);
  Tensor x = Tensor::uniform({1 << 15}, rng, -4.0f, 4.0f, true);
  Tensor y = gelu(x), s = sigmoid(x);
  for (int64_t i = 0; i < x.numel(); i += 1001) {
    const double v = x.data()[i];
    CHECK(y.data()[i] == doctest::Approx(0.5 * v * (1 + std::erf(v / std::sqrt(2.0)))));
    CHECK(s.data()[i] == doctest::Approx(1 / (1 + std::exp(-v))));
  }
  add(y, s).backward(Tensor::ones({1 << 15}));
  const double v = x.data()[777];
  const double sig = 1 / (1 + std::exp(-v));
  const double dgelu = 0.5 * (1 + std::erf(v / std::sqrt(2.0))) +
                       v * std::exp(-v * v / 2) / std::sqrt(2 * std::numbers::pi);
  CHECK(x.grad().at({777}) == doctest::Approx(dgelu + sig * (1 - sig)));
}

TEST_CASE("activations: NoGradGuard records no node") {
  Tensor x = Tensor::ones({4}, true);
  NoGradGuard guard;
  for (const Tensor& y :
       {exp(x), log(x), tanh(x), sigmoid(x), relu(x), gelu(x), gelu(x, GeluApprox::tanh)}) {
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
  }
}
