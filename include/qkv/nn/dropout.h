// Dropout module: zeroes elements with probability p when the pass is given a dropout stream
// (training), the identity otherwise.
#pragma once

#include "qkv/nn/context.h"
#include "qkv/nn/module.h"

namespace qkv::nn {

class Dropout : public Module {
 public:
  explicit Dropout(float p);

  Tensor forward(const Context& ctx, const Tensor& x) const;

 private:
  float p_;
};

}  // namespace qkv::nn
