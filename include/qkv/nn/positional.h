// Position vectors added to the token embeddings: learned (`weight` [block_size, C], a
// parameter) or sinusoidal ("Attention Is All You Need"; a fixed table, not a parameter).
#pragma once

#include <cstdint>

#include "qkv/nn/model_config.h"
#include "qkv/nn/module.h"

namespace qkv::nn {

// PE[p, 2i] = sin(p·w_i), PE[p, 2i+1] = cos(p·w_i), w_i = exp(-ln(10000)·2i/C); computed in
// double, stored as float. [n, C]; C must be even.
Tensor sinusoidal_table(int64_t n, int64_t C);

class PositionalEncoding : public Module {
 public:
  // learned: normal(0, 0.02) from init_rng; sinusoidal: init_rng is not used. (rope adds no
  // position vectors: a rope stack has no PositionalEncoding.)
  PositionalEncoding(PosEncoding kind, int64_t block_size, int64_t C, Rng& init_rng);

  // Vectors of positions [offset, offset + T): [T, C]. Throws past block_size.
  Tensor forward(int64_t offset, int64_t T) const;

 private:
  PosEncoding kind_;
  int64_t block_size_;
  Tensor table_;  // the learned parameter or the fixed table
};

}  // namespace qkv::nn
