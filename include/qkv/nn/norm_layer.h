// NormLayer: the norm of a transformer sublayer, or the stack's last one (ln_f), over the last
// dim with eps 1e-5: LayerNorm (biased variance, as PyTorch), with `weight` [C] (init 1) and
// `bias` [C] (init 0) only when bias is true; or RMSNorm, `weight` alone. It also gives the
// sublayer it normalises its wrapping (qkv::Residual).
#pragma once

#include <cstdint>

#include "qkv/nn/context.h"
#include "qkv/nn/module.h"
#include "qkv/ops.h"

namespace qkv::nn {

class NormLayer : public Module {
 public:
  NormLayer(int64_t C, NormType type, bool bias);

  Tensor forward(const Tensor& x) const;
  // The wrapping of a sublayer (attention, MLP) whose norm this is, placed as `norm` says.
  // Dropout draws from the pass's stream (none without one).
  Residual residual(const Context& ctx, Norm norm, float dropout) const;

 private:
  static constexpr float kEps = 1e-5f;
  NormType type_;
  Tensor weight_, bias_;
};

}  // namespace qkv::nn
