// The encoder (BERT-like; the first half of an encoder-decoder): EncoderLayer, bidirectional
// self-attention + MLP, and Encoder, the stack tok_emb + pos_emb -> drop -> blocks.0..L-1 ->
// [ln_f] that turns ids into hidden states [B, T, C]. Each sublayer is wrapped in its layer
// norm, dropout and residual as model.norm says (qkv::Residual); ln_f exists only for pre-norm
// (a post-norm stack ends normalised).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "qkv/nn/attention.h"
#include "qkv/nn/dropout.h"
#include "qkv/nn/embedding.h"
#include "qkv/nn/feed_forward.h"
#include "qkv/nn/layer_norm.h"
#include "qkv/nn/model_config.h"
#include "qkv/nn/module.h"
#include "qkv/nn/positional.h"

namespace qkv::nn {

// ln1, attn, ln2, mlp.
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

// EncoderModel is this stack plus the output head; EncoderDecoderModel holds one as "encoder".
class Encoder : public Module {
 public:
  // Weights drawn from init_rng; dropout masks from *dropout_rng, which the model owns.
  Encoder(const ModelConfig& config, Rng& init_rng, Rng* dropout_rng);

  // ids: B·T ids; padding: [B, T] (nonzero = padding) or undefined -> hidden states [B, T, C].
  // Throws for T > block_size.
  Tensor forward(std::span<const int32_t> ids, int64_t B, int64_t T, const Tensor& padding) const;

  const Embedding& tok_emb() const { return tok_emb_; }

 private:
  int64_t block_size_;
  // Declared in registration order, as in EncoderLayer; the constructor adds blocks_ and ln_f_.
  Embedding& tok_emb_;
  PositionalEncoding& pos_emb_;
  Dropout& drop_;
  std::vector<EncoderLayer*> blocks_;
  LayerNorm* ln_f_ = nullptr;
};

}  // namespace qkv::nn
