// Internal to the library: a pre-norm layer's self-attention sublayer as one fused op, used by
// nn::MultiHeadAttention.
#pragma once

#include <cstdint>

#include "qkv/ops.h"

namespace qkv {

// x + dropout(linear(packed_self_attention(linear(layer_norm(x, ln_weight, ln_bias, eps), w_qkv,
// b_qkv), n_head, options), w_proj, b_proj), resid_dropout) as one node: the same values and
// gradients (dropout masks drawn in the same order: the heads', then the output's from
// resid_rng, which may be null for none), with each thread taking whole sequences through all
// of it. x: [B, T, C]; w_qkv: [3C, C]; w_proj: [C, C]; biases optional. Falls back to the ops
// one by one when there are fewer sequences than threads, or a tensor is passed twice.
Tensor residual_self_attention(const Tensor& x, const Tensor& ln_weight, const Tensor& ln_bias,
                               float eps, const Tensor& w_qkv, const Tensor& b_qkv,
                               const Tensor& w_proj, const Tensor& b_proj, int64_t n_head,
                               const AttentionOptions& options, float resid_dropout,
                               Rng* resid_rng);

}  // namespace qkv
