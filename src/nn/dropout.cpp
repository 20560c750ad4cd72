// Dropout module over qkv::dropout, drawing from the pass's stream.
#include "qkv/nn/dropout.h"

#include "qkv/error.h"
#include "qkv/ops.h"

namespace qkv::nn {

Dropout::Dropout(float p) : p_(p) {
  QKV_CHECK(p >= 0.0f && p < 1.0f, "dropout: p = {} is not in [0, 1)", p);
}

Tensor Dropout::forward(const Context& ctx, const Tensor& x) const {
  // The identity without a copy or a graph node: most passes (eval, p = 0) pay nothing.
  if (!ctx.dropout || p_ == 0.0f) return x;
  return dropout(x, p_, true, *ctx.dropout);
}

}  // namespace qkv::nn
