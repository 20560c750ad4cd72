// NormLayer over qkv::layer_norm or qkv::rms_norm, and the sublayer wrapping it parametrises.
#include "qkv/nn/norm_layer.h"

#include "qkv/ops.h"

namespace qkv::nn {

NormLayer::NormLayer(int64_t C, NormType type, bool bias)
    : type_(type),
      weight_(param("weight", {C}, Init::ones())),
      bias_(bias && type == NormType::layernorm ? param("bias", {C}, Init::zeros()) : Tensor()) {}

Tensor NormLayer::forward(const Tensor& x) const {
  return type_ == NormType::rmsnorm ? rms_norm(x, weight_, kEps)
                                    : layer_norm(x, weight_, bias_, kEps);
}

Residual NormLayer::residual(const Context& ctx, Norm norm, float dropout) const {
  return {.norm = norm,
          .norm_type = type_,
          .ln_weight = weight_,
          .ln_bias = bias_,
          .eps = kEps,
          .dropout = dropout,
          .rng = ctx.dropout};
}

}  // namespace qkv::nn
