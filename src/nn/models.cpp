// Decoder, Encoder and EncoderDecoder: a stack (or two) plus the output head.
#include "qkv/nn/models.h"

#include "qkv/error.h"
#include "qkv/ops.h"

namespace qkv::nn {

namespace {

const ModelConfig& validated(const ModelConfig& c, ModelKind kind, const char* who) {
  c.validate();
  QKV_CHECK(c.kind == kind, "{}: model.kind is '{}', expected '{}'", who, enum_name(c.kind),
            enum_name(kind));
  return c;
}

}  // namespace

// Stream 1 keeps dropout masks independent of the init draws (stream 0) of the same seed.
Decoder::Decoder(const ModelConfig& config)
    : dropout_rng(config.seed, 1), config_(validated(config, ModelKind::decoder, "Decoder")) {
  Rng init_rng(config_.seed);
  stack_ = &submodule<DecoderStack>("", config_, false, init_rng, &dropout_rng);
  if (!config_.tie_weights)
    lm_head_ = &submodule<Linear>("lm_head", config_.n_embd, config_.vocab_size, false, init_rng);
  name_parameters();
}

Tensor Decoder::forward(std::span<const int32_t> ids, int64_t B, int64_t T,
                        std::vector<LayerCache>* cache, int64_t pos_offset) {
  Tensor h = stack_->forward(ids, B, T, {}, {}, cache, pos_offset);
  return linear(h, lm_head_ ? lm_head_->weight() : stack_->tok_emb().weight(), {}, precision());
}

Encoder::Encoder(const ModelConfig& config)
    : dropout_rng(config.seed, 1), config_(validated(config, ModelKind::encoder, "Encoder")) {
  Rng init_rng(config_.seed);
  stack_ = &submodule<EncoderStack>("", config_, init_rng, &dropout_rng);
  if (!config_.tie_weights)
    lm_head_ = &submodule<Linear>("lm_head", config_.n_embd, config_.vocab_size, false, init_rng);
  name_parameters();
}

Tensor Encoder::forward(std::span<const int32_t> ids, int64_t B, int64_t T, const Tensor& padding) {
  Tensor h = stack_->forward(ids, B, T, padding);
  return linear(h, lm_head_ ? lm_head_->weight() : stack_->tok_emb().weight(), {}, precision());
}

EncoderDecoder::EncoderDecoder(const ModelConfig& config)
    : dropout_rng(config.seed, 1),
      config_(validated(config, ModelKind::encoder_decoder, "EncoderDecoder")) {
  Rng init_rng(config_.seed);
  encoder_ = &submodule<EncoderStack>("encoder", config_, init_rng, &dropout_rng);
  decoder_ = &submodule<DecoderStack>("decoder", config_, true, init_rng, &dropout_rng);
  if (!config_.tie_weights)
    lm_head_ = &submodule<Linear>("lm_head", config_.n_embd, config_.vocab_size, false, init_rng);
  name_parameters();
}

Tensor EncoderDecoder::encode(std::span<const int32_t> src_ids, int64_t B, int64_t Ts,
                              const Tensor& src_padding) {
  return encoder_->forward(src_ids, B, Ts, src_padding);
}

Tensor EncoderDecoder::decode(const Tensor& memory, const Tensor& src_padding,
                              std::span<const int32_t> tgt_ids, int64_t B, int64_t Tt,
                              std::vector<LayerCache>* cache, int64_t pos_offset) {
  Tensor h = decoder_->forward(tgt_ids, B, Tt, memory, src_padding, cache, pos_offset);
  return linear(h, lm_head_ ? lm_head_->weight() : decoder_->tok_emb().weight(), {}, precision());
}

Tensor EncoderDecoder::forward(std::span<const int32_t> src_ids, std::span<const int32_t> tgt_ids,
                               int64_t B, int64_t Ts, int64_t Tt, const Tensor& src_padding) {
  return decode(encode(src_ids, B, Ts, src_padding), src_padding, tgt_ids, B, Tt);
}

}  // namespace qkv::nn
