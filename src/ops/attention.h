// Internal to the library: the self-attention op the nn modules use in training.
#pragma once

#include <cstdint>

#include "qkv/ops.h"

namespace qkv {

// scaled_dot_product_attention(q, k, v, n_head, options) for self-attention, reading q, k and v
// in place from the packed output of one [C, 3C] projection: qkv [B, T, 3C] holds q, k, v as
// channels [0, C), [C, 2C), [2C, 3C) (nanoGPT's c_attn). Same values and gradients, without
// the three split copies forward and their accumulation backward. Returns [B, T, C].
Tensor packed_self_attention(const Tensor& qkv, int64_t n_head, const AttentionOptions& options);

}  // namespace qkv
