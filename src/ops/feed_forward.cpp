// feed_forward: y = gelu(x·W1ᵀ + b1)·W2ᵀ + b2 as one node. Rows are independent until the
// weight gradients, which sum over all rows: the forward splits rows over the threads with no
// barrier, and the backward has one, between the per-row part and the weight gradients.
#include "ops/feed_forward.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>

#include "ops/gemm.h"
#include "ops/vecmath.h"
#include "qkv/autograd.h"
#include "qkv/error.h"
#include "qkv/ops.h"

namespace qkv {
namespace {

constexpr float kInvSqrt2 = static_cast<float>(1.0 / std::numbers::sqrt2);
constexpr float kInvSqrt2Pi = static_cast<float>(std::numbers::inv_sqrtpi / std::numbers::sqrt2);

struct Dims {
  int64_t N, C, F;  // rows, model channels, hidden features
};

// Rows [r0, r1) of h = x·W1ᵀ + b1, g = gelu(h) = h·Φ(h), y = g·W2ᵀ + b2.
// x, y: [N, C]; h, g: [N, F]; W1: [F, C]; W2: [C, F]; b1: [F] or null; b2: [C] or null.
void rows_forward(float* y, float* h, float* g, const float* x, const float* W1, const float* b1,
                  const float* W2, const float* b2, const Dims& d, int64_t r0, int64_t r1) {
  const int64_t n = r1 - r0, C = d.C, F = d.F;
  if (b1)
    for (int64_t r = r0; r < r1; ++r) std::copy_n(b1, F, h + r * F);
  gemm_ld(false, true, n, F, C, x + r0 * C, C, W1, C, b1 ? 1.0f : 0.0f, h + r0 * F, F);
  const float* hb = h + r0 * F;
  float* gb = g + r0 * F;
  for (int64_t e = 0; e < n * F; ++e)
    gb[e] = 0.5f * hb[e] * (1.0f + vecmath::erf(hb[e] * kInvSqrt2));
  if (b2)
    for (int64_t r = r0; r < r1; ++r) std::copy_n(b2, C, y + r * C);
  gemm_ld(false, true, n, C, F, gb, F, W2, F, b2 ? 1.0f : 0.0f, y + r0 * C, C);
}

// Backward, with dg = dy·W2 and dh = dg ∘ gelu'(h), gelu'(h) = Φ(h) + h·φ(h):
//   dx += dh·W1;  dW1 += dhᵀ·x;  db1 += Σ_rows dh;  dW2 += dyᵀ·g;  db2 += Σ_rows dy.
// A grad flagged in ow_* (nothing written yet) is written instead; null grads are skipped.
// Phase 1, rows per thread: dh (dh: [N, F] scratch) and dx. Phase 2, after a barrier, by
// output-feature blocks: on an even thread count half the threads share dW1/db1 and half
// dW2/db2 (the same N·C·F multiply-adds each), else each thread takes a block of both. Bias
// sums add their rows in order. Shapes as in rows_forward; dy: [N, C].
void feed_forward_backward(float* dx, bool ow_dx, float* dW1, bool ow_dW1, float* db1, float* dW2,
                           bool ow_dW2, float* db2, float* dh, const float* dy, const float* x,
                           const float* h, const float* g, const float* W1, const float* W2,
                           const Dims& d, int parts) {
  const int64_t N = d.N, C = d.C, F = d.F;
  const bool first = dW1 || db1, second = dW2 || db2;
  const bool halves = first && second && parts % 2 == 0;
#pragma omp parallel num_threads(parts) if (parts > 1)
  {
    const int t = omp_get_thread_num();
    {
      const auto [r0, r1] = block(N, t, parts);
      const int64_t n = r1 - r0;
      float* dhb = dh + r0 * F;
      const float* hb = h + r0 * F;
      gemm_ld(false, false, n, F, C, dy + r0 * C, C, W2, F, 0.0f, dhb, F);
      for (int64_t e = 0; e < n * F; ++e) {
        const float ex = vecmath::exp(-0.5f * hb[e] * hb[e]);
        const float cdf = 0.5f * (1.0f + vecmath::erf_with_exp(hb[e] * kInvSqrt2, ex));
        dhb[e] *= cdf + hb[e] * kInvSqrt2Pi * ex;
      }
      if (dx) gemm_ld(false, false, n, C, F, dhb, F, W1, C, ow_dx ? 0.0f : 1.0f, dx + r0 * C, C);
    }
#pragma omp barrier
    int part1 = t, parts1 = parts, part2 = t, parts2 = parts;  // -1: none of that side
    if (halves) {
      parts1 = parts2 = parts / 2;
      part1 = t < parts / 2 ? t : -1;
      part2 = t < parts / 2 ? -1 : t - parts / 2;
    }
    if (first && part1 >= 0) {
      const auto [f0, f1] = block(F, part1, parts1);
      if (dW1)
        gemm_ld(true, false, f1 - f0, C, N, dh + f0, F, x, C, ow_dW1 ? 0.0f : 1.0f, dW1 + f0 * C,
                C);
      if (db1)
        for (int64_t r = 0; r < N; ++r)
          for (int64_t f = f0; f < f1; ++f) db1[f] += dh[r * F + f];
    }
    if (second && part2 >= 0) {
      const auto [c0, c1] = block(C, part2, parts2);
      if (dW2)
        gemm_ld(true, false, c1 - c0, F, N, dy + c0, C, g, F, ow_dW2 ? 0.0f : 1.0f, dW2 + c0 * F,
                F);
      if (db2)
        for (int64_t r = 0; r < N; ++r)
          for (int64_t c = c0; c < c1; ++c) db2[c] += dy[r * C + c];
    }
  }
}

std::string describe(const char* role, const Tensor& t) {
  if (!t.defined()) return fmt::format("{} (undefined)", role);
  if (t.name().empty()) return fmt::format("{} {}", role, t.shape());
  return fmt::format("{} '{}' {}", role, t.name(), t.shape());
}

}  // namespace

Tensor feed_forward(const Tensor& x, const Tensor& w1, const Tensor& b1, const Tensor& w2,
                    const Tensor& b2) {
  const char* op = "feed_forward";
  QKV_CHECK(x.defined() && w1.defined() && w2.defined() && x.rank() >= 1 && w1.rank() == 2 &&
                w2.rank() == 2,
            "{}: needs x [..., C], w1 [F, C] and w2 [C, F]; got {}, {}, {}", op, describe("x", x),
            describe("w1", w1), describe("w2", w2));
  const int64_t C = x.shape().back(), F = w1.size(0);
  QKV_CHECK(w1.size(1) == C && w2.size(0) == C && w2.size(1) == F,
            "{}: {} has {} features, but {} and {} must be [F, {}] and [{}, F]", op,
            describe("x", x), C, describe("w1", w1), describe("w2", w2), C, C);
  QKV_CHECK(!b1.defined() || b1.shape() == Shape{F}, "{}: {} does not match {}: expected [{}]", op,
            describe("b1", b1), describe("w1", w1), F);
  QKV_CHECK(!b2.defined() || b2.shape() == Shape{C}, "{}: {} does not match {}: expected [{}]", op,
            describe("b2", b2), describe("w2", w2), C);
  const int64_t N = x.numel() / std::max<int64_t>(C, 1);
  const int parts = N * C * F >= kSplitMin ? omp_get_max_threads() : 1;
  const TensorImpl* args[] = {x.impl(), w1.impl(), b1.defined() ? b1.impl() : nullptr, w2.impl(),
                              b2.defined() ? b2.impl() : nullptr};
  bool repeated = false;
  for (int i = 0; i < 5; ++i)
    for (int j = i + 1; j < 5; ++j) repeated |= args[i] && args[i] == args[j];
  if (repeated || N < 16 * parts) return linear(gelu(linear(x, w1, b1)), w2, b2);

  const Dims d{N, C, F};
  Tensor y = Tensor::empty(x.shape()), h = Tensor::empty({N, F}), g = Tensor::empty({N, F});
  const float* pb1 = b1.defined() ? b1.data() : nullptr;
  const float* pb2 = b2.defined() ? b2.data() : nullptr;
#pragma omp parallel num_threads(parts) if (parts > 1)
  {
    const auto [r0, r1] = block(N, omp_get_thread_num(), parts);
    rows_forward(y.data(), h.data(), g.data(), x.data(), w1.data(), pb1, w2.data(), pb2, d, r0, r1);
  }
  record(y, op, {x, w1, b1, w2, b2}, [x, w1, b1, w2, b2, h, g, d](const float* dy) {
    bool ow_dx = false, ow_dW1 = false, ow_dW2 = false;
    float* dx = x.grad_to_write(ow_dx);
    float* dW1 = w1.grad_to_write(ow_dW1);
    float* dW2 = w2.grad_to_write(ow_dW2);
    float* db1 = b1.defined() ? b1.grad_data() : nullptr;
    float* db2 = b2.defined() ? b2.grad_data() : nullptr;
    Tensor dh = Tensor::empty({d.N, d.F});
    feed_forward_backward(dx, ow_dx, dW1, ow_dW1, db1, dW2, ow_dW2, db2, dh.data(), dy, x.data(),
                          h.data(), g.data(), w1.data(), w2.data(), d, omp_get_max_threads());
  });
  return y;
}

}  // namespace qkv
