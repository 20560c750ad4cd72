// Encoder and decoder layers: each sublayer is one op, wrapped by the layer's norm placement.
#include "qkv/nn/transformer.h"

namespace qkv::nn {

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

Tensor EncoderLayer::forward(const Tensor& x, const Tensor& padding) const {
  const Tensor h = attn_.forward(x, ln1_.residual(norm_, dropout_, dropout_rng_), padding);
  return mlp_.forward(h, ln2_.residual(norm_, dropout_, dropout_rng_));
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

Tensor DecoderLayer::forward(const Tensor& x, const Tensor& memory, const Tensor& memory_padding,
                             LayerCache* cache) const {
  Tensor h = attn_.forward(x, ln1_.residual(norm_, dropout_, dropout_rng_), {},
                           cache ? &cache->self : nullptr);
  if (cross_attn_)
    h = cross_attn_->forward(h, ln_cross_->residual(norm_, dropout_, dropout_rng_), memory,
                             memory_padding, cache ? &cache->cross : nullptr);
  return mlp_.forward(h, ln2_.residual(norm_, dropout_, dropout_rng_));
}

}  // namespace qkv::nn
