// Transformer layers. Pre-LN: x += attn(ln1(x)); [x += cross_attn(ln_cross(x), memory)];
// x += mlp(ln2(x)). Post-LN: x = ln1(x + attn(x)); [x = ln_cross(x + cross_attn(x, memory))];
// x = ln2(x + mlp(x)). Parameters register as ln1, attn, [ln_cross, cross_attn], ln2, mlp.
#pragma once

#include "qkv/nn/attention.h"
#include "qkv/nn/feed_forward.h"
#include "qkv/nn/layer_norm.h"
#include "qkv/nn/model_config.h"
#include "qkv/nn/module.h"

namespace qkv::nn {

// 0.02 / sqrt(2·n_layer): GPT-2's init for the projections that feed the residual stream.
float residual_proj_stddev(const ModelConfig& config);

// Bidirectional self-attention + feed-forward (BERT-like block).
class EncoderLayer : public Module {
 public:
  EncoderLayer(const ModelConfig& config, Rng& init_rng, Rng* dropout_rng);

  // x: [B, T, C]; padding: [B, T] (nonzero = padding key) or undefined.
  Tensor forward(const Tensor& x, const Tensor& padding = {}) const;

 private:
  bool pre_norm_;
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
                 KVCache* cache = nullptr) const;

 private:
  bool pre_norm_;
  // Declared in registration order: the initialisers register the children.
  LayerNorm& ln1_;
  MultiHeadAttention& attn_;
  LayerNorm* ln_cross_;
  CrossAttention* cross_attn_;
  LayerNorm& ln2_;
  FeedForward& mlp_;
};

}  // namespace qkv::nn
