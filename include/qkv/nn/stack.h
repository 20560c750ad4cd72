// The body every model shares: tok_emb + positions -> dropout -> blocks.0..L-1 -> [ln_f]
// (ln_f only for pre-LN; post-LN stacks end normalised). Returns hidden states [B, T, C];
// the models add the head.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "qkv/nn/attention.h"
#include "qkv/nn/dropout.h"
#include "qkv/nn/embedding.h"
#include "qkv/nn/layer_norm.h"
#include "qkv/nn/model_config.h"
#include "qkv/nn/module.h"
#include "qkv/nn/positional.h"
#include "qkv/nn/transformer.h"

namespace qkv::nn {

// Bidirectional stack of EncoderLayers.
class EncoderStack : public Module {
 public:
  EncoderStack(const ModelConfig& config, Rng& init_rng, Rng* dropout_rng);

  // ids: B·T ids; padding: [B, T] (nonzero = padding) or undefined. Throws for T > block_size.
  Tensor forward(std::span<const int32_t> ids, int64_t B, int64_t T,
                 const Tensor& padding = {}) const;

  const Embedding& tok_emb() const { return *tok_emb_; }

 private:
  int64_t block_size_;
  Embedding* tok_emb_;
  PositionalEncoding* pos_emb_;
  Dropout* drop_;
  std::vector<EncoderLayer*> blocks_;
  LayerNorm* ln_f_ = nullptr;
};

// Causal stack of DecoderLayers, with cross-attention to an encoder memory when asked.
class DecoderStack : public Module {
 public:
  DecoderStack(const ModelConfig& config, bool cross_attention, Rng& init_rng, Rng* dropout_rng);

  // ids: B·T ids at positions [pos_offset, pos_offset + T), which must fit in block_size.
  // cache: empty, or one LayerCache per layer holding exactly pos_offset positions (checked).
  Tensor forward(std::span<const int32_t> ids, int64_t B, int64_t T, const Tensor& memory,
                 const Tensor& memory_padding, std::vector<LayerCache>* cache,
                 int64_t pos_offset) const;

  const Embedding& tok_emb() const { return *tok_emb_; }

 private:
  int64_t block_size_;
  Embedding* tok_emb_;
  PositionalEncoding* pos_emb_;
  Dropout* drop_;
  std::vector<DecoderLayer*> blocks_;
  LayerNorm* ln_f_ = nullptr;
};

}  // namespace qkv::nn
