// FeedForward (the transformer's `mlp`): fc = Linear(C, F) -> GELU (erf) -> proj = Linear(F, C)
// -> dropout.
#pragma once

#include <cstdint>

#include "qkv/nn/dropout.h"
#include "qkv/nn/layer_norm.h"
#include "qkv/nn/linear.h"
#include "qkv/nn/module.h"

namespace qkv::nn {

class FeedForward : public Module {
 public:
  // fc weights ~ normal(0, 0.02); proj weights ~ normal(0, proj_stddev) (GPT-2 scales the
  // residual projections by 1/sqrt(2·n_layer)).
  FeedForward(int64_t C, int64_t F, bool bias, float dropout, Rng* dropout_rng, Rng& init_rng,
              float proj_stddev);

  Tensor forward(const Tensor& x) const;  // [..., C] -> [..., C]
  // x + forward(ln(x)): a pre-norm layer's MLP sublayer, computed as one fused op.
  Tensor forward_residual(const Tensor& x, const LayerNorm& ln) const;

 private:
  Linear& fc_;
  Linear& proj_;
  Dropout& drop_;
  float dropout_;
  Rng* dropout_rng_;
};

}  // namespace qkv::nn
