// softmax and log_softmax over the last dim. x, y: [N, C] with N = numel / C.
// Both subtract the row max before exp so that large logits cannot overflow.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "ops/pointwise.h"
#include "qkv/error.h"
#include "qkv/ops.h"

namespace qkv {

// y[n, :] = exp(x[n, :] - max) / Σ exp(x[n, :] - max).   x, y: [N, C].
static void softmax_forward(float* y, const float* x, int64_t N, int64_t C) {
  for_index(N, N * C >= kParallelMin, [=](int64_t n) {
    const float* xr = x + n * C;
    float* yr = y + n * C;
    const float mx = *std::max_element(xr, xr + C);
    float sum = 0.0f;
    for (int64_t c = 0; c < C; ++c) {
      yr[c] = std::exp(xr[c] - mx);
      sum += yr[c];
    }
    const float inv = 1.0f / sum;
    for (int64_t c = 0; c < C; ++c) yr[c] *= inv;
  });
}

// dx += y * (dy - Σ_c dy*y), per row.   dx, dy, y: [N, C].
static void softmax_backward(float* dx, const float* dy, const float* y, int64_t N, int64_t C) {
#pragma omp parallel for schedule(static) if (N * C >= kParallelMin)
  for (int64_t n = 0; n < N; ++n) {
    const float* dyr = dy + n * C;
    const float* yr = y + n * C;
    float* dxr = dx + n * C;
    float dot = 0.0f;
    for (int64_t c = 0; c < C; ++c) dot += dyr[c] * yr[c];
    for (int64_t c = 0; c < C; ++c) dxr[c] += yr[c] * (dyr[c] - dot);
  }
}

// y[n, :] = x[n, :] - max - log Σ exp(x[n, :] - max).   x, y: [N, C].
static void log_softmax_forward(float* y, const float* x, int64_t N, int64_t C) {
  for_index(N, N * C >= kParallelMin, [=](int64_t n) {
    const float* xr = x + n * C;
    float* yr = y + n * C;
    const float mx = *std::max_element(xr, xr + C);
    float sum = 0.0f;
    for (int64_t c = 0; c < C; ++c) sum += std::exp(xr[c] - mx);
    const float shift = mx + std::log(sum);
    for (int64_t c = 0; c < C; ++c) yr[c] = xr[c] - shift;
  });
}

// dx += dy - exp(y) * Σ_c dy, per row (exp(y) is the softmax).   dx, dy, y: [N, C].
static void log_softmax_backward(float* dx, const float* dy, const float* y, int64_t N, int64_t C) {
#pragma omp parallel for schedule(static) if (N * C >= kParallelMin)
  for (int64_t n = 0; n < N; ++n) {
    const float* dyr = dy + n * C;
    const float* yr = y + n * C;
    float* dxr = dx + n * C;
    float total = 0.0f;
    for (int64_t c = 0; c < C; ++c) total += dyr[c];
    for (int64_t c = 0; c < C; ++c) dxr[c] += dyr[c] - std::exp(yr[c]) * total;
  }
}

// Runs forward over the rows and records backward(dx, dy, y) from the saved output.
static Tensor over_rows(const char* op, const Tensor& x,
                        void (*forward)(float*, const float*, int64_t, int64_t),
                        void (*backward)(float*, const float*, const float*, int64_t, int64_t)) {
  // A scalar has no last dim, and C = 0 would make N = numel / C.
  QKV_CHECK(x.rank() >= 1 && x.shape().back() > 0,
            "{}: input of shape {} has no last dim to normalise over", op, x.shape());
  const int64_t C = x.shape().back(), N = x.numel() / C;
  Tensor out = Tensor::empty(x.shape());
  forward(out.data(), x.data(), N, C);
  record(out, op, {x}, [y = out.detach(), N, C, backward](const float* dout, GradOuts g) {
    if (float* dx = zero_if_fresh(g[0], N * C)) backward(dx, dout, y.data(), N, C);
  });
  return out;
}

Tensor softmax(const Tensor& x) {
  return over_rows("softmax", x, softmax_forward, softmax_backward);
}
Tensor log_softmax(const Tensor& x) {
  return over_rows("log_softmax", x, log_softmax_forward, log_softmax_backward);
}

}  // namespace qkv
