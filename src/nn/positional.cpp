// Learned and sinusoidal position vectors.
#include "qkv/nn/positional.h"

#include <cmath>
#include <numeric>
#include <vector>

#include "qkv/error.h"
#include "qkv/ops.h"

namespace qkv::nn {

Tensor sinusoidal_table(int64_t n, int64_t C) {
  QKV_CHECK(C % 2 == 0, "sinusoidal positions: n_embd = {} is not even", C);
  Tensor t = Tensor::empty({n, C});
  for (int64_t p = 0; p < n; ++p)
    for (int64_t i = 0; i < C / 2; ++i) {
      const double w = std::exp(-std::log(10000.0) * double(2 * i) / double(C));
      t.data()[p * C + 2 * i] = float(std::sin(double(p) * w));
      t.data()[p * C + 2 * i + 1] = float(std::cos(double(p) * w));
    }
  return t;
}

PositionalEncoding::PositionalEncoding(PosEncoding kind, int64_t block_size, int64_t C,
                                       Rng& init_rng)
    : kind_(kind),
      block_size_(block_size),
      table_(kind == PosEncoding::learned
                 ? param("weight", {block_size, C}, Init::normal(init_rng, 0.02f))
                 : sinusoidal_table(block_size, C)) {}

Tensor PositionalEncoding::forward(int64_t offset, int64_t T) const {
  QKV_CHECK(offset >= 0 && T > 0 && offset + T <= block_size_,
            "positions {}..{} do not fit in block_size {}", offset, offset + T - 1, block_size_);
  if (kind_ == PosEncoding::sinusoidal) return narrow(table_, 0, offset, T);
  std::vector<int32_t> positions(T);
  std::iota(positions.begin(), positions.end(), int32_t(offset));
  return embedding(table_, positions, {T});
}

}  // namespace qkv::nn
