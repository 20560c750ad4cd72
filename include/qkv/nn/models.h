// The three model kinds, each built from one validated ModelConfig. Logits come from lm_head
// (Linear(C, V), never a bias) or, with tie_weights, from the token embedding's weight.
// Each model owns `dropout_rng` (seed config.seed, stream 1): every dropout mask is drawn from
// it, so saving its state makes a resumed run replay the same masks.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "qkv/nn/attention.h"
#include "qkv/nn/linear.h"
#include "qkv/nn/model_config.h"
#include "qkv/nn/module.h"
#include "qkv/nn/stack.h"

namespace qkv::nn {

// GPT-like: tok_emb, [pos_emb], blocks.*, [ln_f], [lm_head]; causal self-attention.
class Decoder : public Module {
 public:
  explicit Decoder(const ModelConfig& config);  // validates; kind must be decoder

  // ids: B·T ids -> logits [B, T, V]. With cache, ids are the new positions only and
  // pos_offset the number already cached (see DecoderStack::forward).
  Tensor forward(std::span<const int32_t> ids, int64_t B, int64_t T,
                 std::vector<LayerCache>* cache = nullptr, int64_t pos_offset = 0);

  const ModelConfig& config() const { return config_; }
  Rng dropout_rng;

 private:
  ModelConfig config_;
  DecoderStack* stack_;  // registered under "" so its names have no prefix
  Linear* lm_head_ = nullptr;
};

// BERT-like: tok_emb, [pos_emb], blocks.*, [ln_f], [lm_head]; bidirectional self-attention.
class Encoder : public Module {
 public:
  explicit Encoder(const ModelConfig& config);  // validates; kind must be encoder

  // ids: B·T ids; padding: [B, T] (nonzero = padding) or undefined -> logits [B, T, V].
  Tensor forward(std::span<const int32_t> ids, int64_t B, int64_t T, const Tensor& padding = {});

  const ModelConfig& config() const { return config_; }
  Rng dropout_rng;

 private:
  ModelConfig config_;
  EncoderStack* stack_;  // registered under "" so its names have no prefix
  Linear* lm_head_ = nullptr;
};

// Translation-like: encoder.*, decoder.* (with cross-attention), [lm_head]; one vocabulary,
// tie_weights ties lm_head to decoder.tok_emb. The source padding masks encoder
// self-attention and every cross-attention.
class EncoderDecoder : public Module {
 public:
  explicit EncoderDecoder(const ModelConfig& config);  // validates; kind must be encoder_decoder

  // src_ids: B·Ts ids; src_padding: [B, Ts] or undefined -> memory [B, Ts, C].
  Tensor encode(std::span<const int32_t> src_ids, int64_t B, int64_t Ts,
                const Tensor& src_padding = {});
  // tgt_ids: B·Tt ids -> logits [B, Tt, V]. cache and pos_offset as in Decoder::forward; the
  // cache also keeps the memory's cross-attention keys, so keep one cache per memory.
  Tensor decode(const Tensor& memory, const Tensor& src_padding, std::span<const int32_t> tgt_ids,
                int64_t B, int64_t Tt, std::vector<LayerCache>* cache = nullptr,
                int64_t pos_offset = 0);
  // Teacher forcing: decode(encode(src), tgt).
  Tensor forward(std::span<const int32_t> src_ids, std::span<const int32_t> tgt_ids, int64_t B,
                 int64_t Ts, int64_t Tt, const Tensor& src_padding = {});

  const ModelConfig& config() const { return config_; }
  Rng dropout_rng;

 private:
  ModelConfig config_;
  EncoderStack* encoder_;
  DecoderStack* decoder_;
  Linear* lm_head_ = nullptr;
};

}  // namespace qkv::nn
