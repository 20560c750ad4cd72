// The decoder (GPT-like; the second half of an encoder-decoder): DecoderLayer, causal
// self-attention + optional cross-attention to an encoder memory + MLP, and Decoder, the stack
// tok_emb + pos_emb -> drop -> blocks.0..L-1 -> [ln_f] that turns ids into hidden states
// [B, T, C], optionally one position at a time against a KV cache (LayerCache). Sublayers are
// wrapped and ln_f exists as in the encoder (qkv/nn/encoder.h).
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

// What a decoder layer keeps between decoding steps: its self-attention's keys and values, and
// its cross-attention's projection of the encoder memory. Start each sequence with an empty one.
struct LayerCache {
  KVCache self, cross;
};

// ln1, attn, [ln_cross, cross_attn], ln2, mlp.
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

// DecoderModel is this stack plus the output head; EncoderDecoderModel holds one, with
// cross-attention, as "decoder".
class Decoder : public Module {
 public:
  // Weights drawn from init_rng; dropout masks from *dropout_rng, which the model owns.
  Decoder(const ModelConfig& config, bool cross_attention, Rng& init_rng, Rng* dropout_rng);

  // ids: B·T ids at positions [pos_offset, pos_offset + T), which must fit in block_size ->
  // hidden states [B, T, C]. memory, memory_padding: as in DecoderLayer::forward. cache: null,
  // or empty, or one LayerCache per layer holding exactly pos_offset positions (checked).
  Tensor forward(std::span<const int32_t> ids, int64_t B, int64_t T, const Tensor& memory,
                 const Tensor& memory_padding, std::vector<LayerCache>* cache,
                 int64_t pos_offset) const;

  const Embedding& tok_emb() const { return tok_emb_; }

 private:
  int64_t block_size_;
  // Declared in registration order, as in DecoderLayer; the constructor adds blocks_ and ln_f_.
  Embedding& tok_emb_;
  PositionalEncoding& pos_emb_;
  Dropout& drop_;
  std::vector<DecoderLayer*> blocks_;
  LayerNorm* ln_f_ = nullptr;
};

}  // namespace qkv::nn
