// Dropout module over qkv::dropout, drawing from the model's Rng.
#include "qkv/nn/dropout.h"

#include <cassert>

#include "qkv/error.h"
#include "qkv/ops.h"

namespace qkv::nn {

Dropout::Dropout(float p, Rng* rng) : p_(p), rng_(rng) {
  QKV_CHECK(p >= 0.0f && p < 1.0f, "dropout: p = {} is not in [0, 1)", p);
  assert(p == 0.0f || rng != nullptr);
}

Tensor Dropout::forward(const Tensor& x) const {
  // The identity without a copy or a graph node: most runs (eval, p = 0) pay nothing.
  if (!is_training() || p_ == 0.0f) return x;
  return dropout(x, p_, true, *rng_);
}

}  // namespace qkv::nn
