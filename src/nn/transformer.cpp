// Encoder and decoder layers: each sublayer is one op, wrapped by the layer's norm placement.
#include "qkv/nn/transformer.h"

#include <cmath>

namespace qkv::nn {

float residual_proj_stddev(const ModelConfig& config) {
  return 0.02f / std::sqrt(2.0f * float(config.n_layer));
}

// The wrapping of a sublayer whose norm is ln; dropout only in training mode.
static Residual wrapping(const LayerNorm& ln, Norm norm, float dropout, Rng* rng, bool training) {
  return {.norm = norm,
          .ln_weight = ln.weight(),
          .ln_bias = ln.bias(),
          .eps = LayerNorm::kEps,
          .dropout = dropout,
          .rng = training ? rng : nullptr};
}

EncoderLayer::EncoderLayer(const ModelConfig& c, Rng& init_rng, Rng* dropout_rng)
    : norm_(c.norm),
      dropout_(c.dropout),
      dropout_rng_(dropout_rng),
      ln1_(submodule<LayerNorm>("ln1", c.n_embd, c.bias)),
      attn_(submodule<MultiHeadAttention>("attn", c.n_embd, c.n_head, false, c.bias, init_rng,
                                          residual_proj_stddev(c))),
      ln2_(submodule<LayerNorm>("ln2", c.n_embd, c.bias)),
      mlp_(submodule<FeedForward>("mlp", c.n_embd, c.ffn(), c.bias, init_rng,
                                  residual_proj_stddev(c))) {}

Residual EncoderLayer::around(const LayerNorm& ln) const {
  return wrapping(ln, norm_, dropout_, dropout_rng_, is_training());
}

Tensor EncoderLayer::forward(const Tensor& x, const Tensor& padding) const {
  return mlp_.forward(attn_.forward(x, around(ln1_), padding), around(ln2_));
}

DecoderLayer::DecoderLayer(const ModelConfig& c, bool cross_attention, Rng& init_rng,
                           Rng* dropout_rng)
    : norm_(c.norm),
      dropout_(c.dropout),
      dropout_rng_(dropout_rng),
      ln1_(submodule<LayerNorm>("ln1", c.n_embd, c.bias)),
      attn_(submodule<MultiHeadAttention>("attn", c.n_embd, c.n_head, true, c.bias, init_rng,
                                          residual_proj_stddev(c))),
      ln_cross_(cross_attention ? &submodule<LayerNorm>("ln_cross", c.n_embd, c.bias) : nullptr),
      cross_attn_(cross_attention
                      ? &submodule<CrossAttention>("cross_attn", c.n_embd, c.n_head, c.bias,
                                                   init_rng, residual_proj_stddev(c))
                      : nullptr),
      ln2_(submodule<LayerNorm>("ln2", c.n_embd, c.bias)),
      mlp_(submodule<FeedForward>("mlp", c.n_embd, c.ffn(), c.bias, init_rng,
                                  residual_proj_stddev(c))) {}

Residual DecoderLayer::around(const LayerNorm& ln) const {
  return wrapping(ln, norm_, dropout_, dropout_rng_, is_training());
}

Tensor DecoderLayer::forward(const Tensor& x, const Tensor& memory, const Tensor& memory_padding,
                             LayerCache* cache) const {
  Tensor h = attn_.forward(x, around(ln1_), {}, cache ? &cache->self : nullptr);
  if (cross_attn_)
    h = cross_attn_->forward(h, around(*ln_cross_), memory, memory_padding,
                             cache ? &cache->cross : nullptr);
  return mlp_.forward(h, around(ln2_));
}

}  // namespace qkv::nn
