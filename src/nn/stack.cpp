// The layer and the stack: each sublayer is one op, wrapped by the layer's norm placement; the
// stack checks the KV cache against the positions it is asked for.
#include "qkv/nn/stack.h"

#include <string>

#include "qkv/error.h"
#include "qkv/ops.h"

namespace qkv::nn {

Layer::Layer(const ModelConfig& c, bool causal, bool cross_attention, Rng& init_rng,
             const Rotary& rotary)
    : norm_(c.norm),
      dropout_(c.dropout),
      ln1_(submodule<NormLayer>("ln1", c.n_embd, c.norm_type, c.bias)),
      attn_(submodule<MultiHeadAttention>("attn", c.n_embd, c.n_head, causal, c.bias, init_rng,
                                          c.residual_proj_stddev(), c.qk_norm, rotary)),
      ln_cross_(cross_attention ? &submodule<NormLayer>("ln_cross", c.n_embd, c.norm_type, c.bias)
                                : nullptr),
      cross_attn_(cross_attention
                      ? &submodule<CrossAttention>("cross_attn", c.n_embd, c.n_head, c.bias,
                                                   init_rng, c.residual_proj_stddev(), c.qk_norm)
                      : nullptr),
      ln2_(submodule<NormLayer>("ln2", c.n_embd, c.norm_type, c.bias)),
      mlp_(submodule<FeedForward>("mlp", c.n_embd, c.ffn(), c.bias, init_rng,
                                  c.residual_proj_stddev(), c.activation)) {}

Tensor Layer::forward(const Context& ctx, const Tensor& x, const Tensor& padding,
                      const Tensor& memory, const Tensor& memory_padding, LayerCache* cache) const {
  Tensor h = attn_.forward(ctx, x, ln1_.residual(ctx, norm_, dropout_), padding,
                           cache ? &cache->self : nullptr);
  if (cross_attn_)
    h = cross_attn_->forward(ctx, h, ln_cross_->residual(ctx, norm_, dropout_), memory,
                             memory_padding, cache ? &cache->cross : nullptr);
  return mlp_.forward(ctx, h, ln2_.residual(ctx, norm_, dropout_));
}

Stack::Stack(const ModelConfig& c, bool causal, bool cross_attention, Rng& init_rng)
    : block_size_(c.block_size),
      tok_emb_(submodule<Embedding>("tok_emb", c.vocab_size, c.n_embd, init_rng)),
      pos_emb_(c.pos_encoding == PosEncoding::rope
                   ? nullptr
                   : &submodule<PositionalEncoding>("pos_emb", c.pos_encoding, c.block_size,
                                                    c.n_embd, init_rng)),
      drop_(submodule<Dropout>("drop", c.dropout)) {
  // One table for every layer: positions 0..block_size-1.
  const Rotary rotary = c.pos_encoding == PosEncoding::rope
                            ? rotary_table(c.block_size, c.head_size(), c.rope_base)
                            : Rotary{};
  for (int64_t i = 0; i < c.n_layer; ++i)
    blocks_.push_back(&submodule<Layer>("blocks." + std::to_string(i), c, causal, cross_attention,
                                        init_rng, rotary));
  if (c.norm == Norm::pre) ln_f_ = &submodule<NormLayer>("ln_f", c.n_embd, c.norm_type, c.bias);
}

Tensor Stack::run(const Context& ctx, const char* who, std::span<const int32_t> ids, int64_t B,
                  int64_t T, int64_t pos_offset, const Tensor& padding, const Tensor& memory,
                  const Tensor& memory_padding, std::vector<LayerCache>* cache) const {
  QKV_CHECK(B > 0 && T > 0 && int64_t(ids.size()) == B * T,
            "{}: {} ids do not form a batch of B = {} sequences of T = {}", who, ids.size(), B, T);
  if (cache) {
    if (cache->empty()) cache->resize(blocks_.size());
    QKV_CHECK(cache->size() == blocks_.size(), "{}: KV cache has {} layers, model has {}", who,
              cache->size(), blocks_.size());
    QKV_CHECK((*cache)[0].self.length == pos_offset,
              "{}: KV cache holds {} positions but pos_offset is {}", who,
              (*cache)[0].self.length, pos_offset);
  }
  Tensor x = tok_emb_.forward(ids, {B, T});
  if (pos_emb_) x = x + pos_emb_->forward(pos_offset, T);
  x = drop_.forward(ctx, x);
  for (size_t i = 0; i < blocks_.size(); ++i)
    x = blocks_[i]->forward(ctx, x, padding, memory, memory_padding,
                            cache ? &(*cache)[i] : nullptr);
  return ln_f_ ? ln_f_->forward(x) : x;
}

Tensor Encoder::forward(const Context& ctx, std::span<const int32_t> ids, int64_t B, int64_t T,
                        const Tensor& padding) const {
  QKV_CHECK(T <= block_size(), "encoder: sequence of T = {} exceeds block_size {}", T,
            block_size());
  return run(ctx, "encoder", ids, B, T, 0, padding, {}, {}, nullptr);
}

Tensor Decoder::forward(const Context& ctx, std::span<const int32_t> ids, int64_t B, int64_t T,
                        const Tensor& memory, const Tensor& memory_padding,
                        std::vector<LayerCache>* cache, int64_t pos_offset) const {
  QKV_CHECK(pos_offset >= 0 && pos_offset + T <= block_size(),
            "decoder: positions {}..{} exceed block_size {}; start a new sequence (or crop the "
            "context) before reaching it",
            pos_offset, pos_offset + T - 1, block_size());
  return run(ctx, "decoder", ids, B, T, pos_offset, {}, memory, memory_padding, cache);
}

}  // namespace qkv::nn
