// Dropout module: zeroes elements with probability p in training mode, identity in eval mode.
// The masks come from an Rng owned by the model, so saving that Rng's state replays them.
#pragma once

#include "qkv/nn/module.h"

namespace qkv::nn {

class Dropout : public Module {
 public:
  // rng may be null only when p == 0.
  Dropout(float p, Rng* rng);

  Tensor forward(const Tensor& x) const;

 private:
  float p_;
  Rng* rng_;
};

}  // namespace qkv::nn
