// Embedding: a lookup table `weight` [n, C]; row i is the vector of id i.
#pragma once

#include <cstdint>
#include <span>

#include "qkv/nn/module.h"

namespace qkv::nn {

class Embedding : public Module {
 public:
  Embedding(int64_t n, int64_t C, Rng& init_rng, float stddev = 0.02f);  // normal(0, stddev)

  // ids (each in [0, n)) laid out as ids_shape -> ids_shape + [C].
  Tensor forward(std::span<const int32_t> ids, Shape ids_shape) const;

  const Tensor& weight() const { return weight_; }

 private:
  Tensor weight_;
};

}  // namespace qkv::nn
