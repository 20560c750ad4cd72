// Encoder and decoder layers: residual wiring for pre- and post-LN.
#include "qkv/nn/transformer.h"

#include <cmath>

#include "qkv/ops.h"

namespace qkv::nn {

float residual_proj_stddev(const ModelConfig& config) {
  return 0.02f / std::sqrt(2.0f * float(config.n_layer));
}

EncoderLayer::EncoderLayer(const ModelConfig& c, Rng& init_rng, Rng* dropout_rng)
    : pre_norm_(c.norm == Norm::pre),
      ln1_(submodule<LayerNorm>("ln1", c.n_embd, c.bias)),
      attn_(submodule<MultiHeadAttention>("attn", c.n_embd, c.n_head, false, c.bias, c.dropout,
                                          dropout_rng, init_rng, residual_proj_stddev(c))),
      ln2_(submodule<LayerNorm>("ln2", c.n_embd, c.bias)),
      mlp_(submodule<FeedForward>("mlp", c.n_embd, c.ffn(), c.bias, c.dropout, dropout_rng,
                                  init_rng, residual_proj_stddev(c))) {}

Tensor EncoderLayer::forward(const Tensor& x, const Tensor& padding) const {
  if (pre_norm_) {
    // x + attn(ln1(x)), then h + mlp(ln2(h)): each sublayer one fused op.
    Tensor h = attn_.forward_residual(x, ln1_, padding);
    return mlp_.forward_residual(h, ln2_);
  }
  Tensor h = ln1_.forward(x + attn_.forward(x, padding));
  return ln2_.forward(h + mlp_.forward(h));
}

DecoderLayer::DecoderLayer(const ModelConfig& c, bool cross_attention, Rng& init_rng,
                           Rng* dropout_rng)
    : pre_norm_(c.norm == Norm::pre),
      ln1_(submodule<LayerNorm>("ln1", c.n_embd, c.bias)),
      attn_(submodule<MultiHeadAttention>("attn", c.n_embd, c.n_head, true, c.bias, c.dropout,
                                          dropout_rng, init_rng, residual_proj_stddev(c))),
      ln_cross_(cross_attention ? &submodule<LayerNorm>("ln_cross", c.n_embd, c.bias) : nullptr),
      cross_attn_(cross_attention ? &submodule<CrossAttention>("cross_attn", c.n_embd, c.n_head,
                                                               c.bias, c.dropout, dropout_rng,
                                                               init_rng, residual_proj_stddev(c))
                                  : nullptr),
      ln2_(submodule<LayerNorm>("ln2", c.n_embd, c.bias)),
      mlp_(submodule<FeedForward>("mlp", c.n_embd, c.ffn(), c.bias, c.dropout, dropout_rng,
                                  init_rng, residual_proj_stddev(c))) {}

Tensor DecoderLayer::forward(const Tensor& x, const Tensor& memory, const Tensor& memory_padding,
                             KVCache* cache) const {
  Tensor h;
  if (pre_norm_) {
    // Sublayers as fused ops (x + attn(ln1(x)), h + mlp(ln2(h))), except with a KV cache.
    h = cache ? x + attn_.forward(ln1_.forward(x), {}, cache) : attn_.forward_residual(x, ln1_);
    if (cross_attn_)
      h = h + cross_attn_->forward(ln_cross_->forward(h), memory, memory_padding, cache);
    return mlp_.forward_residual(h, ln2_);
  }
  h = ln1_.forward(x + attn_.forward(x, {}, cache));
  if (cross_attn_)
    h = ln_cross_->forward(h + cross_attn_->forward(h, memory, memory_padding, cache));
  return ln2_.forward(h + mlp_.forward(h));
}

}  // namespace qkv::nn
