// Multi-head attention modules over qkv::scaled_dot_product_attention, on [B, T, C] tensors
// where head h owns channels [h·HS, (h+1)·HS). Self-attention (causal or bidirectional) and
// cross-attention, both with key padding and a KV cache for incremental decoding.
#pragma once

#include <cstdint>

#include "qkv/nn/dropout.h"
#include "qkv/nn/layer_norm.h"
#include "qkv/nn/linear.h"
#include "qkv/nn/module.h"

namespace qkv::nn {

// What one layer keeps between decoding steps, so a new position costs O(context), not a
// recomputation of the whole sequence. Start each new sequence (or new encoder output) with an
// empty cache. Self-attention appends the new positions' keys and values along T;
// cross-attention projects the encoder memory on the first cached step and reuses it.
struct KVCache {
  Tensor k, v;                // [B, positions so far, C]
  Tensor memory_k, memory_v;  // [B, Ts, C]; cross-attention only
  int64_t length() const { return k.defined() ? k.size(1) : 0; }
};

// Self-attention: `qkv` = Linear(C, 3C) (q, k, v = channels [0,C), [C,2C), [2C,3C)), softmax
// with dropout on the probabilities, then `proj` = Linear(C, C) -> dropout.
class MultiHeadAttention : public Module {
 public:
  MultiHeadAttention(int64_t C, int64_t n_head, bool causal, bool bias, float dropout,
                     Rng* dropout_rng, Rng& init_rng, float proj_stddev);

  // x: [B, T, C] -> [B, T, C]. key_padding: [B, Tk] (nonzero = padding) or undefined, where
  // Tk = T plus the cached positions. With a cache, x holds only the new positions: their keys
  // and values are appended to it, and the causal mask is aligned to the end of the sequence.
  Tensor forward(const Tensor& x, const Tensor& key_padding = {}, KVCache* cache = nullptr) const;
  // x + forward(ln(x), key_padding) without a cache: a pre-norm layer's self-attention
  // sublayer, computed as one fused op.
  Tensor forward_residual(const Tensor& x, const LayerNorm& ln, const Tensor& key_padding = {}) const;

  // When set, each forward also stores its attention probabilities [B, NH, Tq, Tk] in *out
  // (qkv::attention_probabilities: no graph, no dropout), for looking inside a model;
  // nullptr (the default) stops it. *out must outlive the forwards.
  void record_probabilities(Tensor* out) { probs_out_ = out; }

 private:
  int64_t C_, n_head_;
  bool causal_;
  float dropout_;
  Rng* dropout_rng_;
  Linear& qkv_;
  Linear& proj_;
  Dropout& drop_;
  Tensor* probs_out_ = nullptr;
};

// Cross-attention: `q` = Linear(C, C) on the decoder stream, `kv` = Linear(C, 2C) on the
// encoder memory (k, v = channels [0,C), [C,2C)); no causal mask; `proj` -> dropout.
class CrossAttention : public Module {
 public:
  CrossAttention(int64_t C, int64_t n_head, bool bias, float dropout, Rng* dropout_rng,
                 Rng& init_rng, float proj_stddev);

  // x: [B, T, C], memory: [B, Ts, C], memory_padding: [B, Ts] or undefined -> [B, T, C].
  // With a cache, the memory's keys and values are computed once and then read from it.
  Tensor forward(const Tensor& x, const Tensor& memory, const Tensor& memory_padding = {},
                 KVCache* cache = nullptr) const;

  // When set, each forward also stores its attention probabilities [B, NH, Tq, Tk] in *out
  // (qkv::attention_probabilities: no graph, no dropout), for looking inside a model;
  // nullptr (the default) stops it. *out must outlive the forwards.
  void record_probabilities(Tensor* out) { probs_out_ = out; }

 private:
  int64_t C_, n_head_;
  float dropout_;
  Rng* dropout_rng_;
  Linear& q_;
  Linear& kv_;
  Linear& proj_;
  Dropout& drop_;
  Tensor* probs_out_ = nullptr;
};

}  // namespace qkv::nn
