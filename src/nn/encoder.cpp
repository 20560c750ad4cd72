// The encoder layer and stack: each sublayer is one op, wrapped by the layer's norm placement.
#include "qkv/nn/encoder.h"

#include <string>

#include "qkv/error.h"
#include "qkv/ops.h"

namespace qkv::nn {

EncoderLayer::EncoderLayer(const ModelConfig& c, Rng& init_rng, Rng* dropout_rng)
    : norm_(c.norm),
      dropout_(c.dropout),
      dropout_rng_(dropout_rng),
      ln1_(submodule<LayerNorm>("ln1", c.n_embd, c.bias)),
      attn_(submodule<MultiHeadAttention>("attn", c.n_embd, c.n_head, false, c.bias, init_rng,
                                          c.residual_proj_stddev())),
      ln2_(submodule<LayerNorm>("ln2", c.n_embd, c.bias)),
      mlp_(submodule<FeedForward>("mlp", c.n_embd, c.ffn(), c.bias, init_rng,
                                  c.residual_proj_stddev())) {}

Tensor EncoderLayer::forward(const Tensor& x, const Tensor& padding) const {
  const Tensor h = attn_.forward(x, ln1_.residual(norm_, dropout_, dropout_rng_), padding);
  return mlp_.forward(h, ln2_.residual(norm_, dropout_, dropout_rng_));
}

Encoder::Encoder(const ModelConfig& c, Rng& init_rng, Rng* dropout_rng)
    : block_size_(c.block_size),
      tok_emb_(submodule<Embedding>("tok_emb", c.vocab_size, c.n_embd, init_rng)),
      pos_emb_(submodule<PositionalEncoding>("pos_emb", c.pos_encoding, c.block_size, c.n_embd,
                                             init_rng)),
      drop_(submodule<Dropout>("drop", c.dropout, dropout_rng)) {
  for (int64_t i = 0; i < c.n_layer; ++i)
    blocks_.push_back(
        &submodule<EncoderLayer>("blocks." + std::to_string(i), c, init_rng, dropout_rng));
  if (c.norm == Norm::pre) ln_f_ = &submodule<LayerNorm>("ln_f", c.n_embd, c.bias);
}

Tensor Encoder::forward(std::span<const int32_t> ids, int64_t B, int64_t T,
                        const Tensor& padding) const {
  QKV_CHECK(B > 0 && T > 0 && int64_t(ids.size()) == B * T,
            "encoder: {} ids do not form a batch of B = {} sequences of T = {}", ids.size(), B, T);
  QKV_CHECK(T <= block_size_, "encoder: sequence of T = {} exceeds block_size {}", T, block_size_);
  Tensor x = drop_.forward(tok_emb_.forward(ids, {B, T}) + pos_emb_.forward(0, T));
  for (const EncoderLayer* block : blocks_) x = block->forward(x, padding);
  return ln_f_ ? ln_f_->forward(x) : x;
}

}  // namespace qkv::nn
