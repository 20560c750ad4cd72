// LayerNorm module over qkv::layer_norm, and the sublayer wrapping it parametrises.
#include "qkv/nn/layer_norm.h"

#include "qkv/ops.h"

namespace qkv::nn {

LayerNorm::LayerNorm(int64_t C, bool bias)
    : weight_(param("weight", {C}, Init::ones())),
      bias_(bias ? param("bias", {C}, Init::zeros()) : Tensor()) {}

Tensor LayerNorm::forward(const Tensor& x) const { return layer_norm(x, weight_, bias_, kEps); }

Residual LayerNorm::residual(const Context& ctx, Norm norm, float dropout) const {
  return {.norm = norm,
          .ln_weight = weight_,
          .ln_bias = bias_,
          .eps = kEps,
          .dropout = dropout,
          .rng = ctx.dropout};
}

}  // namespace qkv::nn
