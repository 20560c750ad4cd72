// Internal: the exact numerics of ExactGradSum (see the note in qkv/optim/exact_grad_sum.h):
// a tensor's exponent bound, the fixed-point sum of a block over micro-batches, and the one
// rounding back to float.
#pragma once

#include <algorithm>
#include <bit>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace qkv::optim::fixed_point {

constexpr int64_t kParallel = 1 << 14;  // elements below which threads cost more than they save
constexpr int64_t kBlock = 512;

// Exponent markers that order below (no grad, zeros) or above (NaN, inf) every real one, so
// the maximum over micro-batches and processes says what the whole step held.
constexpr int32_t kNoGrad = INT32_MIN;
constexpr int32_t kAllZero = INT32_MIN + 1;
constexpr int32_t kNonFinite = INT32_MAX;

// e with max |g| < 2^e, from the largest magnitude's bits: as integers, |float| bit patterns
// order as the values do, with inf and NaN above every finite one, so the maximum is exact and
// sees a NaN (a float max would skip it).
inline int32_t exponent_bound(const float* g, int64_t n, bool threaded) {
  uint32_t top = 0;
#pragma omp parallel for schedule(static) reduction(max : top) if (threaded && n > kParallel)
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, g + i, sizeof bits);
    top = std::max(top, bits & 0x7fffffffu);
  }
  if (top == 0) return kAllZero;
  if (top >= 0x7f800000u) return kNonFinite;
  // Normal: |g| < 2^(biased - 126). Subnormals (biased 0) are below 2^-126 as well.
  return std::max<int32_t>(static_cast<int32_t>(top >> 23), 1) - 126;
}

// acc[j] = Σ_m rint(g_m[begin + j]·2^s) over the micro-batches, for one block: summed in the
// block's cache lines, so each grad is read once and each sum written once. g·2^s is exact in
// double (24 significant bits, a power-of-two factor far from double's range limits), and
// rint's rounding (to nearest, ties to even) is the same on every machine.
inline void sum_block(int64_t* acc, const std::vector<const float*>& grads, int64_t begin,
                      int64_t len, double scale) {
  std::fill(acc, acc + len, 0);
  for (const float* g : grads)
    for (int64_t j = 0; j < len; ++j)
      acc[j] += static_cast<int64_t>(std::nearbyint(double(g[begin + j]) * scale));
}

// float(q) rounds the exact integer once; the power-of-two factor is then exact (in double), and
// the last conversion rounds only a result below float's normal range.
inline float from_fixed(int64_t q, double unscale) {
  return static_cast<float>(double(static_cast<float>(q)) * unscale);
}

// Headroom for M addends: each |rint(g·2^s)| <= 2^(62 - bits), so M of them stay below 2^62.
inline int headroom_bits(int64_t micro_batches) {
  return std::bit_width(static_cast<uint64_t>(micro_batches - 1));
}

}  // namespace qkv::optim::fixed_point
