// DecoderModel, EncoderModel and EncoderDecoderModel: a stack (or two) plus the output head.
#include "qkv/nn/models.h"

#include "qkv/error.h"

namespace qkv::nn {

namespace {

const ModelConfig& validated(const ModelConfig& c, ModelKind kind, const char* who) {
  c.validate();
  QKV_CHECK(c.kind == kind, "{}: model.kind is '{}', expected '{}'", who, enum_name(c.kind),
            enum_name(kind));
  return c;
}

}  // namespace

DecoderModel::DecoderModel(const ModelConfig& config, Rng init_rng)
    : Decoder(validated(config, ModelKind::decoder, "DecoderModel"), false, init_rng),
      config_(config) {
  lm_head_ = &submodule<LmHead>("lm_head", config_, tok_emb(), init_rng);
  name_parameters();
}

Tensor DecoderModel::logits(std::span<const int32_t> ids, int64_t B, int64_t T,
                            std::vector<LayerCache>* cache, int64_t pos_offset,
                            Rng* dropout) const {
  const Context ctx{precision_, dropout};
  return lm_head_->forward(ctx, forward(ctx, ids, B, T, {}, {}, cache, pos_offset));
}

EncoderModel::EncoderModel(const ModelConfig& config, Rng init_rng)
    : Encoder(validated(config, ModelKind::encoder, "EncoderModel"), init_rng), config_(config) {
  lm_head_ = &submodule<LmHead>("lm_head", config_, tok_emb(), init_rng);
  name_parameters();
}

Tensor EncoderModel::logits(std::span<const int32_t> ids, int64_t B, int64_t T,
                            const Tensor& padding, Rng* dropout) const {
  const Context ctx{precision_, dropout};
  return lm_head_->forward(ctx, forward(ctx, ids, B, T, padding));
}

EncoderDecoderModel::EncoderDecoderModel(const ModelConfig& config, Rng init_rng)
    : config_(validated(config, ModelKind::encoder_decoder, "EncoderDecoderModel")),
      encoder_(submodule<Encoder>("encoder", config_, init_rng)),
      decoder_(submodule<Decoder>("decoder", config_, true, init_rng)) {
  lm_head_ = &submodule<LmHead>("lm_head", config_, decoder_.tok_emb(), init_rng);
  name_parameters();
}

Tensor EncoderDecoderModel::encode(std::span<const int32_t> src_ids, int64_t B, int64_t Ts,
                                   const Tensor& src_padding) const {
  return encoder_.forward({precision_}, src_ids, B, Ts, src_padding);
}

Tensor EncoderDecoderModel::decode(const Tensor& memory, const Tensor& src_padding,
                                   std::span<const int32_t> tgt_ids, int64_t B, int64_t Tt,
                                   std::vector<LayerCache>* cache, int64_t pos_offset) const {
  const Context ctx{precision_};
  return lm_head_->forward(
      ctx, decoder_.forward(ctx, tgt_ids, B, Tt, memory, src_padding, cache, pos_offset));
}

Tensor EncoderDecoderModel::logits(std::span<const int32_t> src_ids,
                                   std::span<const int32_t> tgt_ids, int64_t B, int64_t Ts,
                                   int64_t Tt, const Tensor& src_padding, Rng* dropout) const {
  const Context ctx{precision_, dropout};
  const Tensor memory = encoder_.forward(ctx, src_ids, B, Ts, src_padding);
  return lm_head_->forward(
      ctx, decoder_.forward(ctx, tgt_ids, B, Tt, memory, src_padding, nullptr, 0));
}

}  // namespace qkv::nn
