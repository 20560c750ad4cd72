// Inverted dropout: kept elements are scaled by 1/(1-p) in training, so eval is the identity.
#include <cstdint>

#include "ops/pointwise.h"
#include "qkv/error.h"
#include "qkv/ops.h"

namespace qkv {

// mask[i] = 1/(1-p) with probability 1-p, else 0.   mask: [n] (saved for the backward).
// Note: one thread draws in element order, so a saved rng state replays the same mask whatever
// the thread count.
static void dropout_mask(float* mask, int64_t n, float p, Rng& rng) {
  const float scale = 1.0f / (1.0f - p);
  for (int64_t i = 0; i < n; ++i) mask[i] = rng.uniform() < p ? 0.0f : scale;
}

// y = x * mask.   x, y, mask: [n].
static void dropout_forward(float* y, const float* x, const float* mask, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * mask[i];
}

// dx += dy * mask (written instead with overwrite).   dx, dy, mask: [n].
static void dropout_backward(float* dx, bool overwrite, const float* dy, const float* mask,
                             int64_t n) {
  accumulate(dx, overwrite, n, [=](int64_t i) { return dy[i] * mask[i]; });
}

Tensor dropout(const Tensor& x, float p, bool training, Rng& rng) {
  QKV_CHECK(p >= 0.0f && p < 1.0f, "dropout: probability p = {} is outside [0, 1)", p);
  if (!training || p == 0.0f) return x;
  const int64_t n = x.numel();
  Tensor mask = Tensor::empty(x.shape()), y = Tensor::empty(x.shape());
  dropout_mask(mask.data(), n, p, rng);
  dropout_forward(y.data(), x.data(), mask.data(), n);
  record(y, "dropout", {x}, [x, mask, n](const float* dy) {
    bool overwrite = false;
    if (float* dx = x.grad_to_write(overwrite)) dropout_backward(dx, overwrite, dy, mask.data(), n);
  });
  return y;
}

}  // namespace qkv
