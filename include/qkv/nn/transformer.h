// Transformer layers: a self-attention sublayer, a cross-attention sublayer (decoder layers of
// an encoder-decoder) and an MLP sublayer, each wrapped in its layer norm, dropout and residual
// (qkv::Residual): pre-norm x + f(ln(x)) or post-norm ln(x + f(x)). Parameters register as
// ln1, attn, [ln_cross, cross_attn], ln2, mlp.
#pragma once

#include "qkv/nn/attention.h"
#include "qkv/nn/feed_forward.h"
#include "qkv/nn/layer_norm.h"
#include "qkv/nn/model_config.h"
#include "qkv/nn/module.h"

namespace qkv::nn {

// What a decoder layer keeps between decoding steps: its self-attention's keys and values, and
// its cross-attention's projection of the encoder memory. Start each sequence with an empty one.
struct LayerCache {
  KVCache self, cross;
};

// Bidirectional self-attention + feed-forward (BERT-like block).
class EncoderLayer : public Module {
 public:
  EncoderLayer(const ModelConfig& config, Rng& init_rng, Rng* dropout_rng);

  // x: [B, T, C]; padding: [B, T] (nonzero = padding key) or undefined.
  Tensor forward(const Tensor& x, const Tensor& padding = {}) const;

 private:
  Norm norm_;
  float dropout_;
  Rng* dropout_rng_;
  // Declared in registration order: the initialisers register the children.
  LayerNorm& ln1_;
  MultiHeadAttention& attn_;
  LayerNorm& ln2_;
  FeedForward& mlp_;
};

// Causal self-attention + optional cross-attention to an encoder memory + feed-forward.
class DecoderLayer : public Module {
 public:
  DecoderLayer(const ModelConfig& config, bool cross_attention, Rng& init_rng, Rng* dropout_rng);

  // x: [B, T, C] (only the new positions when cache is set); memory: [B, Ts, C] and
  // memory_padding: [B, Ts] for cross-attention, ignored without it.
  Tensor forward(const Tensor& x, const Tensor& memory = {}, const Tensor& memory_padding = {},
                 LayerCache* cache = nullptr) const;

 private:
  Norm norm_;
  float dropout_;
  Rng* dropout_rng_;
  // Declared in registration order: the initialisers register the children. The cross-attention
  // pair exists only in an encoder-decoder's decoder (null otherwise).
  LayerNorm& ln1_;
  MultiHeadAttention& attn_;
  LayerNorm* ln_cross_;
  CrossAttention* cross_attn_;
  LayerNorm& ln2_;
  FeedForward& mlp_;
};

}  // namespace qkv::nn
