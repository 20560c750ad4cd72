// FeedForward (the transformer's `mlp`): the weights of the MLP sublayer (qkv::mlp, ops.h),
// fc = Linear(C, F) -> the activation -> proj = Linear(F, C); swiglu adds gate = Linear(C, F),
// registered between fc and proj. The layer that holds it supplies the wrapping (its norm and
// where it sits, dropout, the residual).
#pragma once

#include <cstdint>

#include "qkv/nn/context.h"
#include "qkv/nn/linear.h"
#include "qkv/nn/module.h"
#include "qkv/ops.h"

namespace qkv::nn {

class FeedForward : public Module {
 public:
  // fc weights ~ normal(0, 0.02); proj weights ~ normal(0, proj_stddev) (GPT-2 scales the
  // residual projections by 1/sqrt(2·n_layer)).
  FeedForward(int64_t C, int64_t F, bool bias, Rng& init_rng, float proj_stddev,
              Activation activation = Activation::gelu);

  // The sublayer over x: [..., C] -> [..., C], wrapped as `residual` says.
  Tensor forward(const Context& ctx, const Tensor& x, const Residual& residual) const;

 private:
  Activation activation_;
  Linear& fc_;
  Linear* gate_;  // swiglu only
  Linear& proj_;
};

}  // namespace qkv::nn
