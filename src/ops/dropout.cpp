// Inverted dropout: kept elements are scaled by 1/(1-p) in training, so eval is the identity.
// The mask is a counter-based hash of one seed drawn from the rng (ops/dropout_mask.h): drawn
// in parallel, the same for any thread count, and recomputed by the backward instead of kept.
#include <algorithm>
#include <cstdint>

#include "ops/dropout_mask.h"
#include "ops/pointwise.h"
#include "qkv/error.h"
#include "qkv/ops.h"

namespace qkv {

// Elements per block of the loops below: each block is one vectorised loop (the mask passed by
// value, so GCC keeps its fields in registers), blocks split over the threads.
constexpr int64_t kBlock = 4096;

// y[i] = x[i] * mask(i) for i in [i0, i1).
static void mask_block(float* y, const float* x, DropoutMask mask, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; ++i) y[i] = x[i] * mask(static_cast<uint64_t>(i));
}

// dx[i] (+)= dy[i] * mask(i) for i in [i0, i1): written into a fresh grad, else added.
static void mask_grad_block(GradOut dx, const float* dy, DropoutMask mask, int64_t i0, int64_t i1) {
  float* d = dx.data;
  if (dx.overwrite)
    for (int64_t i = i0; i < i1; ++i) d[i] = dy[i] * mask(static_cast<uint64_t>(i));
  else
    for (int64_t i = i0; i < i1; ++i) d[i] += dy[i] * mask(static_cast<uint64_t>(i));
}

// y = x * mask.   x, y: [n].
static void dropout_forward(float* y, const float* x, const DropoutMask& mask, int64_t n) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t b = 0; b < blocks; ++b)
    mask_block(y, x, mask, b * kBlock, std::min(n, (b + 1) * kBlock));
}

// dx += dy * mask (written into a fresh grad).   dx, dy: [n].
static void dropout_backward(GradOut dx, const float* dy, const DropoutMask& mask, int64_t n) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t b = 0; b < blocks; ++b)
    mask_grad_block(dx, dy, mask, b * kBlock, std::min(n, (b + 1) * kBlock));
}

Tensor dropout(const Tensor& x, float p, bool training, Rng& rng) {
  QKV_CHECK(p >= 0.0f && p < 1.0f, "dropout: probability p = {} is outside [0, 1)", p);
  if (!training || p == 0.0f) return x;
  const int64_t n = x.numel();
  const DropoutMask mask(DropoutMask::draw_seed(rng), p);
  Tensor y = Tensor::empty(x.shape());
  dropout_forward(y.data(), x.data(), mask, n);
  record(y, "dropout", {x}, [mask, n](const float* dy, GradOuts g) {
    if (g[0]) dropout_backward(g[0], dy, mask, n);
  });
  return y;
}

}  // namespace qkv
