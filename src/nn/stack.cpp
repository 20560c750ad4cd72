// Embedding + layer stacks shared by the three models.
#include "qkv/nn/stack.h"

#include <string>

#include "qkv/error.h"
#include "qkv/ops.h"

namespace qkv::nn {

namespace {

void check_ids(const char* who, std::span<const int32_t> ids, int64_t B, int64_t T) {
  QKV_CHECK(B > 0 && T > 0 && int64_t(ids.size()) == B * T,
            "{}: {} ids do not form a batch of B = {} sequences of T = {}", who, ids.size(), B, T);
}

}  // namespace

EncoderStack::EncoderStack(const ModelConfig& c, Rng& init_rng, Rng* dropout_rng)
    : block_size_(c.block_size) {
  tok_emb_ = &submodule<Embedding>("tok_emb", c.vocab_size, c.n_embd, init_rng);
  pos_emb_ =
      &submodule<PositionalEncoding>("pos_emb", c.pos_encoding, c.block_size, c.n_embd, init_rng);
  drop_ = &submodule<Dropout>("drop", c.dropout, dropout_rng);
  for (int64_t i = 0; i < c.n_layer; ++i)
    blocks_.push_back(
        &submodule<EncoderLayer>("blocks." + std::to_string(i), c, init_rng, dropout_rng));
  if (c.norm == Norm::pre) ln_f_ = &submodule<LayerNorm>("ln_f", c.n_embd, c.bias);
}

Tensor EncoderStack::forward(std::span<const int32_t> ids, int64_t B, int64_t T,
                             const Tensor& padding) const {
  check_ids("encoder", ids, B, T);
  QKV_CHECK(T <= block_size_, "encoder: sequence of T = {} exceeds block_size {}", T, block_size_);
  Tensor x = drop_->forward(tok_emb_->forward(ids, {B, T}) + pos_emb_->forward(0, T));
  for (const EncoderLayer* block : blocks_) x = block->forward(x, padding);
  return ln_f_ ? ln_f_->forward(x) : x;
}

DecoderStack::DecoderStack(const ModelConfig& c, bool cross_attention, Rng& init_rng,
                           Rng* dropout_rng)
    : block_size_(c.block_size) {
  tok_emb_ = &submodule<Embedding>("tok_emb", c.vocab_size, c.n_embd, init_rng);
  pos_emb_ =
      &submodule<PositionalEncoding>("pos_emb", c.pos_encoding, c.block_size, c.n_embd, init_rng);
  drop_ = &submodule<Dropout>("drop", c.dropout, dropout_rng);
  for (int64_t i = 0; i < c.n_layer; ++i)
    blocks_.push_back(&submodule<DecoderLayer>("blocks." + std::to_string(i), c, cross_attention,
                                               init_rng, dropout_rng));
  if (c.norm == Norm::pre) ln_f_ = &submodule<LayerNorm>("ln_f", c.n_embd, c.bias);
}

Tensor DecoderStack::forward(std::span<const int32_t> ids, int64_t B, int64_t T,
                             const Tensor& memory, const Tensor& memory_padding,
                             std::vector<LayerCache>* cache, int64_t pos_offset) const {
  check_ids("decoder", ids, B, T);
  QKV_CHECK(pos_offset >= 0 && pos_offset + T <= block_size_,
            "decoder: positions {}..{} exceed block_size {}; start a new sequence (or crop the "
            "context) before reaching it",
            pos_offset, pos_offset + T - 1, block_size_);
  if (cache) {
    if (cache->empty()) cache->resize(blocks_.size());
    QKV_CHECK(cache->size() == blocks_.size(), "decoder: KV cache has {} layers, model has {}",
              cache->size(), blocks_.size());
    QKV_CHECK((*cache)[0].self.length == pos_offset,
              "decoder: KV cache holds {} positions but pos_offset is {}", (*cache)[0].self.length,
              pos_offset);
  }
  Tensor x = drop_->forward(tok_emb_->forward(ids, {B, T}) + pos_emb_->forward(pos_offset, T));
  for (size_t i = 0; i < blocks_.size(); ++i)
    x = blocks_[i]->forward(x, memory, memory_padding, cache ? &(*cache)[i] : nullptr);
  return ln_f_ ? ln_f_->forward(x) : x;
}

}  // namespace qkv::nn
