// LayerNorm over the last dim (eps 1e-5, biased variance, as PyTorch): `weight` [C] (init 1),
// `bias` [C] (init 0) only when bias is true.
#pragma once

#include <cstdint>

#include "qkv/nn/module.h"

namespace qkv::nn {

class LayerNorm : public Module {
 public:
  LayerNorm(int64_t C, bool bias);

  Tensor forward(const Tensor& x) const;
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }  // undefined without bias
  static constexpr float kEps = 1e-5f;

 private:
  Tensor weight_, bias_;
};

}  // namespace qkv::nn
