// The transformer stacks: Layer, self-attention (bidirectional or causal) + optional
// cross-attention to an encoder memory + MLP, and Stack, tok_emb [+ pos_emb] -> drop ->
// blocks.0..L-1 -> [ln_f], which turns ids into hidden states [B, T, C] (rope: no pos_emb; the
// self-attentions rotate q and k by position instead). Encoder (BERT-like; the
// first half of an encoder-decoder) and Decoder (GPT-like; the second half, optionally one
// position at a time against a KV cache) are its two uses. Each sublayer is wrapped in its layer
// norm, dropout and residual as model.norm says (qkv::Residual); ln_f exists only for pre-norm
// (a post-norm stack ends normalised).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "qkv/nn/attention.h"
#include "qkv/nn/context.h"
#include "qkv/nn/dropout.h"
#include "qkv/nn/embedding.h"
#include "qkv/nn/feed_forward.h"
#include "qkv/nn/model_config.h"
#include "qkv/nn/module.h"
#include "qkv/nn/norm_layer.h"
#include "qkv/nn/positional.h"

namespace qkv::nn {

// What a decoder layer keeps between decoding steps: its self-attention's keys and values, and
// its cross-attention's projection of the encoder memory. Start each sequence with an empty one.
struct LayerCache {
  KVCache self, cross;
};

// ln1, attn, [ln_cross, cross_attn], ln2, mlp.
class Layer : public Module {
 public:
  // rotary: the self-attention's table (undefined without rope).
  Layer(const ModelConfig& config, bool causal, bool cross_attention, Rng& init_rng,
        const Rotary& rotary);

  // x: [B, T, C] (only the new positions when cache is set); padding: [B, T] (nonzero = padding
  // key) or undefined; memory: [B, Ts, C] and memory_padding: [B, Ts] for cross-attention,
  // ignored without it.
  Tensor forward(const Context& ctx, const Tensor& x, const Tensor& padding, const Tensor& memory,
                 const Tensor& memory_padding, LayerCache* cache) const;

 private:
  Norm norm_;
  float dropout_;
  // Declared in registration order: the initialisers register the children. The cross-attention
  // pair exists only in an encoder-decoder's decoder (null otherwise).
  NormLayer& ln1_;
  MultiHeadAttention& attn_;
  NormLayer* ln_cross_;
  CrossAttention* cross_attn_;
  NormLayer& ln2_;
  FeedForward& mlp_;
};

class Stack : public Module {
 public:
  const Embedding& tok_emb() const { return tok_emb_; }

 protected:
  // Weights drawn from init_rng.
  Stack(const ModelConfig& config, bool causal, bool cross_attention, Rng& init_rng);

  // ids: B·T ids at positions [pos_offset, pos_offset + T) (within block_size: the caller
  // checks); the rest as in Layer::forward, cache one per layer (or null). `who` names the
  // stack in errors.
  Tensor run(const Context& ctx, const char* who, std::span<const int32_t> ids, int64_t B,
             int64_t T, int64_t pos_offset, const Tensor& padding, const Tensor& memory,
             const Tensor& memory_padding, std::vector<LayerCache>* cache) const;

  int64_t block_size() const { return block_size_; }

 private:
  int64_t block_size_;
  // Declared in registration order, as in Layer; the constructor adds blocks_ and ln_f_.
  Embedding& tok_emb_;
  PositionalEncoding* pos_emb_;  // null with rope
  Dropout& drop_;
  std::vector<Layer*> blocks_;
  NormLayer* ln_f_ = nullptr;
};

// Bidirectional self-attention. EncoderModel is this stack plus the output head;
// EncoderDecoderModel holds one as "encoder".
class Encoder : public Stack {
 public:
  Encoder(const ModelConfig& config, Rng& init_rng) : Stack(config, false, false, init_rng) {}

  // ids: B·T ids; padding: [B, T] (nonzero = padding) or undefined -> hidden states [B, T, C].
  // Throws for T > block_size.
  Tensor forward(const Context& ctx, std::span<const int32_t> ids, int64_t B, int64_t T,
                 const Tensor& padding) const;
};

// Causal self-attention. DecoderModel is this stack plus the output head; EncoderDecoderModel
// holds one, with cross-attention, as "decoder".
class Decoder : public Stack {
 public:
  Decoder(const ModelConfig& config, bool cross_attention, Rng& init_rng)
      : Stack(config, true, cross_attention, init_rng) {}

  // ids: B·T ids at positions [pos_offset, pos_offset + T), which must fit in block_size ->
  // hidden states [B, T, C]. memory, memory_padding: as in Layer::forward. cache: null,
  // or empty, or one LayerCache per layer holding exactly pos_offset positions (checked).
  Tensor forward(const Context& ctx, std::span<const int32_t> ids, int64_t B, int64_t T,
                 const Tensor& memory, const Tensor& memory_padding,
                 std::vector<LayerCache>* cache, int64_t pos_offset) const;
};

}  // namespace qkv::nn
