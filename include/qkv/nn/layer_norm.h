// LayerNorm over the last dim (eps 1e-5, biased variance, as PyTorch): `weight` [C] (init 1),
// `bias` [C] (init 0) only when bias is true; and the wrapping (qkv::Residual) it gives a
// transformer sublayer it normalises.
#pragma once

#include <cstdint>

#include "qkv/nn/context.h"
#include "qkv/nn/module.h"
#include "qkv/ops.h"

namespace qkv::nn {

class LayerNorm : public Module {
 public:
  LayerNorm(int64_t C, bool bias);

  Tensor forward(const Tensor& x) const;
  // The wrapping of a sublayer (attention, MLP) whose norm this is, placed as `norm` says.
  // Dropout draws from the pass's stream (none without one).
  Residual residual(const Context& ctx, Norm norm, float dropout) const;

 private:
  static constexpr float kEps = 1e-5f;
  Tensor weight_, bias_;
};

}  // namespace qkv::nn
