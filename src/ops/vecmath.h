// Vectorisable float math shared by the op kernels: exp and erf written as branch-free
// polynomials (std::exp and std::erf stay scalar libm calls without -ffast-math, and took a
// fifth of a training step in GELU alone), and fixed-lane row reductions (a running float sum
// does not vectorise without -ffast-math; 16 lanes summed in order do, and stay deterministic).
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

namespace qkv::vecmath {

// e^x for x <= 88 (the float range; callers pass x <= 0 or small x). Cephes' expf:
// x = n·ln2 + r with |r| <= ln2/2, a degree-7 polynomial for e^r, 2^n written into the
// exponent; within 1.4 ulp of std::exp on [-87, 88]. Below -87 the result is clamped at ~1e-38.
inline float exp(float x) {
  x = std::max(x, -87.0f);
  const float t = x * 1.44269504088896341f + 12582912.0f;  // + 1.5·2^23 rounds to an integer
  const float n = t - 12582912.0f;
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;  // ln2 split in two for accuracy
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * std::bit_cast<float>((std::bit_cast<int32_t>(t) - 0x4B400000 + 127) << 23);
}

// erf(z) given e = exp(-z²) (callers often need that exponential too): Abramowitz & Stegun
// 7.1.26, |error| <= 1.5e-7, the same formula as PyTorch's vectorised CPU erf.
inline float erf_with_exp(float z, float e) {
  const float a = std::abs(z);
  const float t = 1.0f / (1.0f + 0.3275911f * a);
  float p = 1.061405429f;
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  return std::copysign(1.0f - p * t * e, z);
}

inline float erf(float z) { return erf_with_exp(z, exp(-z * z)); }

constexpr int kLanes = 16;

inline float lane_max(const float* x, int64_t n) {
  float acc[kLanes];
  std::fill_n(acc, kLanes, -std::numeric_limits<float>::infinity());
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] = std::max(acc[l], x[j + l]);
  for (; j < n; ++j) acc[0] = std::max(acc[0], x[j]);
  return *std::max_element(acc, acc + kLanes);
}

// Σ_j f(j) for j in [0, n), accumulated in kLanes lanes that are then added in order.
template <class F>
inline float lane_sum_of(int64_t n, F f) {
  float acc[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += f(j + l);
  for (; j < n; ++j) acc[0] += f(j);
  float sum = 0.0f;
  for (float a : acc) sum += a;
  return sum;
}

inline float lane_sum(const float* x, int64_t n) {
  return lane_sum_of(n, [x](int64_t j) { return x[j]; });
}

inline float lane_dot(const float* x, const float* y, int64_t n) {
  return lane_sum_of(n, [x, y](int64_t j) { return x[j] * y[j]; });
}

// Σ_j e^(x[j] - shift), for a softmax's normaliser (shift = the row max).
inline float lane_sum_exp(const float* x, int64_t n, float shift) {
  return lane_sum_of(n, [x, shift](int64_t j) { return exp(x[j] - shift); });
}

}  // namespace qkv::vecmath
