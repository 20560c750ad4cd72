// Multi-head attention modules: the projections of the attention sublayer (qkv::attention,
// ops.h) and what belongs to the attention itself: the heads, the causal mask, and recording
// the probabilities. The layer that holds one supplies the wrapping (its layer norm and where it
// sits, dropout, the residual). Head h owns channels [h·HS, (h+1)·HS) of [B, T, C] tensors.
#pragma once

#include <cstdint>

#include "qkv/nn/context.h"
#include "qkv/nn/linear.h"
#include "qkv/nn/module.h"
#include "qkv/ops.h"

namespace qkv::nn {

// Self-attention: `qkv` = Linear(C, 3C) gives q, k and v (channels [0,C), [C,2C), [2C,3C));
// `proj` = Linear(C, C) projects the heads' output. With qk_norm, q and k of each head are
// RMS-normalised; with a rotary table (undefined: none), they are then rotated by position.
class MultiHeadAttention : public Module {
 public:
  MultiHeadAttention(int64_t C, int64_t n_head, bool causal, bool bias, Rng& init_rng,
                     float proj_stddev, bool qk_norm = false, Rotary rotary = {});

  // The sublayer over x: [B, T, C] -> [B, T, C], wrapped as `residual` says. key_padding:
  // [B, Tk] (nonzero = padding; Tk = T plus the cached positions) or undefined. With a cache, x
  // holds only the new positions: their keys and values are appended to it, and the causal mask
  // is aligned to the end of the sequence.
  Tensor forward(const Context& ctx, const Tensor& x, const Residual& residual,
                 const Tensor& key_padding = {}, KVCache* cache = nullptr) const;

  // When set, each forward also stores its attention probabilities [B, NH, Tq, Tk] in *out (no
  // dropout), for looking inside a model; nullptr (the default) stops it. *out must outlive the
  // forwards.
  void record_probabilities(Tensor* out) { probs_out_ = out; }

 private:
  int64_t n_head_;
  bool causal_, qk_norm_;
  Rotary rotary_;
  Linear& qkv_;
  Linear& proj_;
  Tensor* probs_out_ = nullptr;
};

// Cross-attention: `q` = Linear(C, C) on x, `kv` = Linear(C, 2C) on the encoder memory (k, v =
// channels [0,C), [C,2C)), no causal mask, `proj` = Linear(C, C). qk_norm as in
// MultiHeadAttention; never a rotation (the keys are the encoder's, not positions of x).
class CrossAttention : public Module {
 public:
  CrossAttention(int64_t C, int64_t n_head, bool bias, Rng& init_rng, float proj_stddev,
                 bool qk_norm = false);

  // The sublayer over x: [B, T, C] attending to memory: [B, Ts, C] (memory_padding: [B, Ts] or
  // undefined) -> [B, T, C]. With a cache, the memory's keys and values are computed on the first
  // call and then read from it.
  Tensor forward(const Context& ctx, const Tensor& x, const Residual& residual,
                 const Tensor& memory, const Tensor& memory_padding = {},
                 KVCache* cache = nullptr) const;

  // As MultiHeadAttention::record_probabilities: [B, NH, T, Ts].
  void record_probabilities(Tensor* out) { probs_out_ = out; }

 private:
  int64_t n_head_;
  bool qk_norm_;
  Linear& q_;
  Linear& kv_;
  Linear& proj_;
  Tensor* probs_out_ = nullptr;
};

}  // namespace qkv::nn
