// Linear: y = x·Wᵀ + b, with `weight` [out, in] (PyTorch's layout) and `bias` [out] when asked.
#pragma once

#include <cstdint>

#include "qkv/nn/context.h"
#include "qkv/nn/module.h"

namespace qkv::nn {

class Linear : public Module {
 public:
  // Weight ~ normal(0, stddev) from init_rng (GPT-2's 0.02 by default), or zeros, drawing
  // nothing, for stddev 0; bias zero.
  Linear(int64_t in, int64_t out, bool bias, Rng& init_rng, float stddev = 0.02f);

  Tensor forward(const Context& ctx, const Tensor& x) const;  // x: [..., in] -> [..., out]

  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }  // undefined without bias

 private:
  Tensor weight_, bias_;
};

}  // namespace qkv::nn
