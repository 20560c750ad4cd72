// Self- and cross-attention modules: their projections, handed to the attention sublayer op.
#include "qkv/nn/attention.h"

#include <utility>

#include "qkv/error.h"

namespace qkv::nn {

MultiHeadAttention::MultiHeadAttention(int64_t C, int64_t n_head, bool causal, bool bias,
                                       Rng& init_rng, float proj_stddev, bool qk_norm,
                                       Rotary rotary)
    : n_head_(n_head),
      causal_(causal),
      qk_norm_(qk_norm),
      rotary_(std::move(rotary)),
      qkv_(submodule<Linear>("qkv", C, 3 * C, bias, init_rng)),
      proj_(submodule<Linear>("proj", C, C, bias, init_rng, proj_stddev)) {}

Tensor MultiHeadAttention::forward(const Context& ctx, const Tensor& x, const Residual& residual,
                                   const Tensor& key_padding, KVCache* cache) const {
  return attention(x, {.n_head = n_head_,
                       .precision = ctx.precision,
                       .residual = residual,
                       .w_in = qkv_.weight(),
                       .b_in = qkv_.bias(),
                       .w_out = proj_.weight(),
                       .b_out = proj_.bias(),
                       .causal = causal_,
                       .key_padding = key_padding,
                       .cache = cache,
                       .probabilities = probs_out_,
                       .qk_norm = qk_norm_,
                       .rotary = rotary_});
}

CrossAttention::CrossAttention(int64_t C, int64_t n_head, bool bias, Rng& init_rng,
                               float proj_stddev, bool qk_norm)
    : n_head_(n_head),
      qk_norm_(qk_norm),
      q_(submodule<Linear>("q", C, C, bias, init_rng)),
      kv_(submodule<Linear>("kv", C, 2 * C, bias, init_rng)),
      proj_(submodule<Linear>("proj", C, C, bias, init_rng, proj_stddev)) {}

Tensor CrossAttention::forward(const Context& ctx, const Tensor& x, const Residual& residual,
                               const Tensor& memory, const Tensor& memory_padding,
                               KVCache* cache) const {
  QKV_CHECK(memory.defined(), "cross-attention: no encoder memory given");
  return attention(x, {.n_head = n_head_,
                       .precision = ctx.precision,
                       .residual = residual,
                       .w_in = q_.weight(),
                       .b_in = q_.bias(),
                       .w_mem = kv_.weight(),
                       .b_mem = kv_.bias(),
                       .w_out = proj_.weight(),
                       .b_out = proj_.bias(),
                       .memory = memory,
                       .key_padding = memory_padding,
                       .cache = cache,
                       .probabilities = probs_out_,
                       .qk_norm = qk_norm_});
}

}  // namespace qkv::nn
