// Linear module over qkv::linear.
#include "qkv/nn/linear.h"

#include "qkv/ops.h"

namespace qkv::nn {

Linear::Linear(int64_t in, int64_t out, bool bias, Rng& init_rng, float stddev)
    : weight_(param("weight", {out, in},
                    stddev > 0.0f ? Init::normal(init_rng, stddev) : Init::zeros())),
      bias_(bias ? param("bias", {out}, Init::zeros()) : Tensor()) {}

Tensor Linear::forward(const Context& ctx, const Tensor& x) const {
  return linear(x, weight_, bias_, ctx.precision);
}

}  // namespace qkv::nn
