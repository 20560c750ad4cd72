// Internal to the library: the transformer's MLP as one fused op, used by nn::FeedForward.
#pragma once

#include "qkv/rng.h"
#include "qkv/tensor.h"

namespace qkv {

// linear(gelu(linear(x, w1, b1)), w2, b2) with the exact (erf) GELU, as one node: the same
// values and gradients, with each thread running its rows through both GEMMs and the GELU
// while they sit in its cache, and one barrier in the backward. x: [..., C]; w1: [F, C];
// b1: [F] or undefined; w2: [C, F]; b2: [C] or undefined. Returns [..., C]. Falls back to the
// three ops when there are too few rows to share between the threads, or when an argument is
// passed twice.
Tensor feed_forward(const Tensor& x, const Tensor& w1, const Tensor& b1, const Tensor& w2,
                    const Tensor& b2);

// The pre-norm MLP sublayer as one node: x + dropout(feed_forward(layer_norm(x, ln_weight,
// ln_bias, eps), w1, b1, w2, b2), dropout_p) — the layer norm, the MLP, the dropout (when
// dropout_p > 0 and rng is set; its mask drawn from rng exactly as qkv::dropout draws it) and
// the residual add, each row's in one pass. ln_bias may be undefined. Falls back to those ops
// as feed_forward does.
Tensor residual_feed_forward(const Tensor& x, const Tensor& ln_weight, const Tensor& ln_bias,
                             float eps, const Tensor& w1, const Tensor& b1, const Tensor& w2,
                             const Tensor& b2, float dropout_p, Rng* rng);

}  // namespace qkv
