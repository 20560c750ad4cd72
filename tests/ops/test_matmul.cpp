// Tests for src/ops/matmul.cpp: matmul (every transpose flag, batched, shared b) and linear.
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

namespace {

Tensor param(Shape shape, Rng& rng) { return Tensor::randn(shape, rng, 1.0f, true); }

// Operand shapes for op(a): [M, K] and op(b): [K, N] behind the given batch dims.
Shape operand(std::vector<int64_t> batch, int64_t rows, int64_t cols, bool trans) {
  Shape s(batch.begin(), batch.end());
  s.push_back(trans ? cols : rows);
  s.push_back(trans ? rows : cols);
  return s;
}

// The naive triple loop: a reference that shares no code with the BLAS path.
// a: [batches, op(a) M x K]; b: shared (one matrix) or one per batch.
std::vector<float> reference_matmul(const Tensor& a, const Tensor& b, bool ta, bool tb,
                                    int64_t batches, int64_t M, int64_t N, int64_t K,
                                    bool shared_b) {
  std::vector<float> c(static_cast<size_t>(batches * M * N));
  for (int64_t i = 0; i < batches; ++i) {
    const float* A = a.data() + i * M * K;
    const float* B = b.data() + (shared_b ? 0 : i * K * N);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k)
          s += double(ta ? A[k * M + m] : A[m * K + k]) * double(tb ? B[n * K + k] : B[k * N + n]);
        c[static_cast<size_t>((i * M + m) * N + n)] = static_cast<float>(s);
      }
  }
  return c;
}

void check_close(const std::vector<float>& got, const std::vector<float>& want) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-5));
}

// Forward against the reference, then gradients against finite differences.
void check_matmul(std::vector<int64_t> batch_a, std::vector<int64_t> batch_b, bool ta, bool tb) {
  const int64_t M = 3, K = 4, N = 2;
  Rng rng(11);
  Tensor a = param(operand(batch_a, M, K, ta), rng), b = param(operand(batch_b, K, N, tb), rng);
  int64_t batches = 1;
  for (int64_t d : batch_a) batches *= d;
  const std::string label = "matmul a " + a.shape().str() + " b " + b.shape().str() +
                            " ta=" + std::to_string(ta) + " tb=" + std::to_string(tb);
  CAPTURE(label);
  Tensor y = matmul(a, b, ta, tb);
  Shape want(batch_a.begin(), batch_a.end());
  want.push_back(M);
  want.push_back(N);
  REQUIRE(y.shape() == want);
  check_close(y.to_vector(),
              reference_matmul(a, b, ta, tb, batches, M, N, K, batch_b.empty() && batches > 1));
  check_gradients(label, [&] { return matmul(a, b, ta, tb); }, {a, b});
}

}  // namespace

TEST_CASE("matmul: a 2x2 product matches the hand-computed one") {
  Tensor a = Tensor::from_vector({2, 2}, {1, 2, 3, 4});
  Tensor b = Tensor::from_vector({2, 2}, {5, 6, 7, 8});
  CHECK(matmul(a, b).to_vector() == std::vector<float>{19, 22, 43, 50});
  CHECK(matmul(a, b, true, false).to_vector() == std::vector<float>{26, 30, 38, 44});
  CHECK(matmul(a, b, false, true).to_vector() == std::vector<float>{17, 23, 39, 53});
  CHECK(matmul(a, b, true, true).to_vector() == std::vector<float>{23, 31, 34, 46});
}

TEST_CASE("matmul: rank 2 with every transpose flag matches the reference and gradients") {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) check_matmul({}, {}, ta, tb);
}

TEST_CASE("matmul: batched rank 3 and rank 4 match the reference and gradients") {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      check_matmul({3}, {3}, ta, tb);
      check_matmul({2, 2}, {2, 2}, ta, tb);
    }
}

TEST_CASE("matmul: a rank-2 b is shared by the batch and its gradient sums over it") {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      check_matmul({3}, {}, ta, tb);
      check_matmul({2, 2}, {}, ta, tb);
    }
}

TEST_CASE("matmul: an input used twice gets both gradients") {
  Rng rng(12);
  Tensor a = param({3, 3}, rng);
  check_gradients("matmul(a, a)", [&] { return matmul(a, a); }, {a});
  check_gradients("matmul(a, aT)", [&] { return matmul(a, a, false, true); }, {a});
}

TEST_CASE("matmul: only the inputs that require grad get one") {
  Rng rng(13);
  Tensor a = Tensor::randn({2, 3, 4}, rng), b = param({4, 5}, rng);
  check_gradients("matmul, b only", [&] { return matmul(a, b); }, {b});
  CHECK_FALSE(a.grad().defined());
}

TEST_CASE("matmul: mismatched shapes are rejected naming both") {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4, 5});
  CHECK_THROWS_WITH_AS(matmul(a, b),
                       doctest::Contains("matmul: inner dims differ: a [2, 3] (trans_a=false) "
                                         "gives K=3, b [4, 5] (trans_b=false) gives K=4"),
                       Error);
  b.set_name("proj.weight");
  CHECK_THROWS_WITH_AS(matmul(a, b), doctest::Contains("b 'proj.weight' [4, 5]"), Error);
  CHECK_NOTHROW(matmul(a, Tensor::zeros({5, 3}), false, true));
  CHECK_THROWS_WITH_AS(matmul(Tensor::zeros({2, 2, 3}), Tensor::zeros({3, 3, 4})),
                       doctest::Contains("matmul: batch dims of a [2, 2, 3] and b [3, 3, 4]"),
                       Error);
  CHECK_THROWS_WITH_AS(matmul(a, Tensor::zeros({2, 3, 4})),
                       doctest::Contains("b [2, 3, 4] must have the rank of a [2, 3]"), Error);
  CHECK_THROWS_WITH_AS(matmul(Tensor::zeros({3}), b), doctest::Contains("matmul: needs rank"),
                       Error);
}

TEST_CASE("linear: known values with a bias") {
  Tensor x = Tensor::from_vector({2, 2}, {1, 2, -1, 3});
  Tensor w = Tensor::from_vector({3, 2}, {1, 0, 0, 1, 1, 1});
  Tensor b = Tensor::from_vector({3}, {0.5f, -1, 2});
  CHECK(linear(x, w, b).to_vector() == std::vector<float>{1.5f, 1, 5, -0.5f, 2, 4});
  CHECK(linear(x, w).to_vector() == std::vector<float>{1, 2, 3, -1, 3, 2});
}

TEST_CASE("linear: gradients match finite differences") {
  Rng rng(14);
  // O = 20 spans two 16-column blocks of the bias-gradient kernel.
  Tensor w = param({20, 3}, rng), b = param({20}, rng);
  SUBCASE("rank-2 input with bias") {
    Tensor x = param({4, 3}, rng);
    check_gradients("linear [4,3] + bias", [&] { return linear(x, w, b); }, {x, w, b});
  }
  SUBCASE("rank-3 input with bias") {
    Tensor x = param({2, 3, 3}, rng);
    check_gradients("linear [2,3,3] + bias", [&] { return linear(x, w, b); }, {x, w, b});
  }
  SUBCASE("rank-2 input without bias") {
    Tensor x = param({5, 3}, rng);
    check_gradients("linear [5,3]", [&] { return linear(x, w); }, {x, w});
  }
  SUBCASE("rank-3 input without bias") {
    Tensor x = param({2, 2, 3}, rng);
    check_gradients("linear [2,2,3]", [&] { return linear(x, w); }, {x, w});
  }
  SUBCASE("input that needs no grad") {
    Tensor x = Tensor::randn({4, 3}, rng);
    check_gradients("linear, weights only", [&] { return linear(x, w, b); }, {w, b});
  }
}

TEST_CASE("linear: GEMMs split over threads match a naive reference, for any thread count") {
  // Large enough to be split: by rows of the output (N = 96), and by output features when there
  // are too few rows to share (N = 4); with an input that needs no grad, dW alone is shared.
  struct Case {
    int64_t N, I, O;
    bool x_grad;
  };
  for (const Case c : {Case{96, 64, 48, true}, Case{4, 128, 640, true}, Case{96, 64, 48, false}}) {
    Rng rng(17);
    Tensor x = Tensor::randn({c.N, c.I}, rng, 1.0f, c.x_grad);
    Tensor w = param({c.O, c.I}, rng), b = param({c.O}, rng);
    Tensor dy = Tensor::randn({c.N, c.O}, rng);
    // y = x·Wᵀ + b;  dx = dy·W;  dW = dyᵀ·x;  db = Σ_n dy
    std::vector<double> y(c.N * c.O), dx(c.N * c.I, 0.0), dw(c.O * c.I, 0.0), db(c.O, 0.0);
    for (int64_t n = 0; n < c.N; ++n)
      for (int64_t o = 0; o < c.O; ++o) {
        double s = b.data()[o];
        const double g = dy.data()[n * c.O + o];
        for (int64_t i = 0; i < c.I; ++i) {
          s += double(x.data()[n * c.I + i]) * w.data()[o * c.I + i];
          dx[n * c.I + i] += g * w.data()[o * c.I + i];
          dw[o * c.I + i] += g * x.data()[n * c.I + i];
        }
        y[n * c.O + o] = s;
        db[o] += g;
      }
    auto close = [](const Tensor& got, const std::vector<double>& want) {
      REQUIRE(got.numel() == static_cast<int64_t>(want.size()));
      for (size_t i = 0; i < want.size(); ++i)
        if (std::abs(got.data()[i] - want[i]) > 1e-4 * (1 + std::abs(want[i]))) return false;
      return true;
    };
    for (const int threads : {1, 2, 3}) {
      CAPTURE(c.N);
      CAPTURE(threads);
      set_num_threads(threads);
      std::vector<std::vector<float>> runs;
      for (int r = 0; r < 2; ++r) {
        for (Tensor* t : {&x, &w, &b}) t->zero_grad();
        Tensor out = linear(x, w, b);
        CHECK(close(out, y));
        out.backward(dy);
        if (c.x_grad) CHECK(close(x.grad(), dx));
        CHECK(close(w.grad(), dw));
        CHECK(close(b.grad(), db));
        runs.push_back(out.to_vector());
        for (const Tensor& t : {w.grad(), b.grad()})
          runs.back().insert(runs.back().end(), t.data(), t.data() + t.numel());
        if (c.x_grad) runs.back().insert(runs.back().end(), x.grad().data(),
                                         x.grad().data() + x.numel());
      }
      CHECK(runs[0] == runs[1]);  // the same thread count gives the same bits
    }
    set_num_threads(0);
  }
}

TEST_CASE("linear: an input used twice gets both gradients") {
  Rng rng(15);
  Tensor w = param({3, 3}, rng);
  check_gradients("linear(w, w)", [&] { return linear(w, w); }, {w});
}

TEST_CASE("linear: a feature mismatch names the weight") {
  Tensor x = Tensor::zeros({4, 128});
  Tensor w = Tensor::zeros({1536, 384});
  w.set_name("blocks.0.mlp.fc.weight");
  CHECK_THROWS_WITH_AS(linear(x, w),
                       doctest::Contains("linear: input [4, 128] has 128 features, weight "
                                         "'blocks.0.mlp.fc.weight' [1536, 384] expects 384"),
                       Error);
  Tensor w2 = Tensor::zeros({3, 2});
  CHECK_THROWS_WITH_AS(linear(Tensor::zeros({1, 2}), w2, Tensor::zeros({4})),
                       doctest::Contains("linear: bias [4] does not match weight [3, 2]"), Error);
  CHECK_THROWS_WITH_AS(linear(Tensor::zeros({1, 2}), Tensor::zeros({2})),
                       doctest::Contains("linear: weight [2] must be [out, in]"), Error);
}

TEST_CASE("matmul and linear: NoGradGuard records no node") {
  Rng rng(16);
  Tensor a = param({2, 3}, rng), b = param({3, 4}, rng), w = param({5, 3}, rng);
  NoGradGuard guard;
  for (const Tensor& y : {matmul(a, b), linear(a, w), linear(a, w, param({5}, rng))}) {
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
  }
}
