// The three model kinds, each built from one validated ModelConfig. A one-stack model is its
// stack plus the output head; the encoder-decoder holds one of each. Logits come from lm_head
// (Linear(C, V), never a bias) or, with tie_weights, from the (decoder's) token embedding.
// The weights are drawn from one Rng(config.seed), the stack's first and lm_head's last, so the
// public constructor passes it to a private one that keeps it alive for both.
// Each model holds what its GEMMs compute in, set once by whoever builds it for a run (fp32 until
// then; bf16 is the caller's promise that choose_precision allowed it), and hands it to its
// layers with each pass (qkv/nn/context.h). A forward given a dropout stream trains: every
// dropout mask is drawn from it; without one there is no dropout.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "qkv/nn/lm_head.h"
#include "qkv/nn/model_config.h"
#include "qkv/nn/module.h"
#include "qkv/nn/stack.h"

namespace qkv::nn {

// GPT-like: tok_emb, [pos_emb], blocks.*, [ln_f], [lm_head]; causal self-attention.
class DecoderModel : public Decoder {
 public:
  // Validates config; its kind must be decoder.
  explicit DecoderModel(const ModelConfig& config) : DecoderModel(config, Rng(config.seed)) {}

  // ids: B·T ids -> logits [B, T, V]. With cache, ids are the new positions only and
  // pos_offset the number already cached (see Decoder::forward).
  Tensor logits(std::span<const int32_t> ids, int64_t B, int64_t T,
                std::vector<LayerCache>* cache = nullptr, int64_t pos_offset = 0,
                Rng* dropout = nullptr) const;

  const ModelConfig& config() const { return config_; }
  void set_precision(Precision precision) { precision_ = precision; }

 private:
  DecoderModel(const ModelConfig& config, Rng init_rng);

  ModelConfig config_;
  LmHead* lm_head_ = nullptr;
  Precision precision_ = Precision::fp32;
};

// BERT-like: tok_emb, [pos_emb], blocks.*, [ln_f], [lm_head]; bidirectional self-attention.
class EncoderModel : public Encoder {
 public:
  // Validates config; its kind must be encoder.
  explicit EncoderModel(const ModelConfig& config) : EncoderModel(config, Rng(config.seed)) {}

  // ids: B·T ids; padding: [B, T] (nonzero = padding) or undefined -> logits [B, T, V].
  Tensor logits(std::span<const int32_t> ids, int64_t B, int64_t T, const Tensor& padding = {},
                Rng* dropout = nullptr) const;

  const ModelConfig& config() const { return config_; }
  void set_precision(Precision precision) { precision_ = precision; }

 private:
  EncoderModel(const ModelConfig& config, Rng init_rng);

  ModelConfig config_;
  LmHead* lm_head_ = nullptr;
  Precision precision_ = Precision::fp32;
};

// Translation-like: encoder.*, decoder.* (with cross-attention), [lm_head]; one vocabulary,
// tie_weights ties lm_head to decoder.tok_emb. The source padding masks encoder
// self-attention and every cross-attention.
class EncoderDecoderModel : public Module {
 public:
  // Validates config; its kind must be encoder_decoder.
  explicit EncoderDecoderModel(const ModelConfig& config)
      : EncoderDecoderModel(config, Rng(config.seed)) {}

  // src_ids: B·Ts ids; src_padding: [B, Ts] or undefined -> memory [B, Ts, C].
  Tensor encode(std::span<const int32_t> src_ids, int64_t B, int64_t Ts,
                const Tensor& src_padding = {}) const;
  // tgt_ids: B·Tt ids -> logits [B, Tt, V]. cache and pos_offset as in DecoderModel::logits; the
  // cache also keeps the memory's cross-attention keys, so keep one cache per memory.
  Tensor decode(const Tensor& memory, const Tensor& src_padding, std::span<const int32_t> tgt_ids,
                int64_t B, int64_t Tt, std::vector<LayerCache>* cache = nullptr,
                int64_t pos_offset = 0) const;
  // Teacher forcing: decode(encode(src), tgt).
  Tensor logits(std::span<const int32_t> src_ids, std::span<const int32_t> tgt_ids, int64_t B,
                int64_t Ts, int64_t Tt, const Tensor& src_padding = {},
                Rng* dropout = nullptr) const;

  const ModelConfig& config() const { return config_; }
  void set_precision(Precision precision) { precision_ = precision; }

 private:
  EncoderDecoderModel(const ModelConfig& config, Rng init_rng);

  ModelConfig config_;
  Encoder& encoder_;
  Decoder& decoder_;
  LmHead* lm_head_ = nullptr;
  Precision precision_ = Precision::fp32;
};

}  // namespace qkv::nn
