// Embedding module over qkv::embedding.
#include "qkv/nn/embedding.h"

#include "qkv/ops.h"

namespace qkv::nn {

Embedding::Embedding(int64_t n, int64_t C, Rng& init_rng, float stddev)
    : weight_(param("weight", {n, C}, Init::normal(init_rng, stddev))) {}

Tensor Embedding::forward(std::span<const int32_t> ids, Shape ids_shape) const {
  return embedding(weight_, ids, ids_shape);
}

}  // namespace qkv::nn
