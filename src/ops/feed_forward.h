// Internal to the library: the transformer's MLP as one fused op, used by nn::FeedForward.
#pragma once

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

}  // namespace qkv
