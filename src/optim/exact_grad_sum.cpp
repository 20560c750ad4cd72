// The exact micro-batch gradient sum: per-tensor int64 fixed point with a shared power-of-two
// scale (see the note in the header).
#include "qkv/optim/exact_grad_sum.h"

#include <algorithm>
#include <bit>
#include <climits>
#include <cmath>
#include <cstring>
#include <limits>

namespace qkv::optim {

namespace {

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
int32_t exponent_bound(const float* g, int64_t n) {
  uint32_t top = 0;
#pragma omp parallel for schedule(static) reduction(max : top) if (n > kParallel)
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
void sum_block(int64_t* acc, const std::vector<const float*>& grads, int64_t begin, int64_t len,
               double scale) {
  std::fill(acc, acc + len, 0);
  for (const float* g : grads)
    for (int64_t j = 0; j < len; ++j)
      acc[j] += static_cast<int64_t>(std::nearbyint(double(g[begin + j]) * scale));
}

// float(q) rounds the exact integer once; the power-of-two factor is then exact (in double), and
// the last conversion rounds only a result below float's normal range.
float from_fixed(int64_t q, double unscale) {
  return static_cast<float>(double(static_cast<float>(q)) * unscale);
}

}  // namespace

ExactGradSum::ExactGradSum(NamedTensors params)
    : params_(std::move(params)), taken_(params_.size()), exponents_(params_.size()) {
  for (const auto& [name, p] : params_) {
    offsets_.push_back(total_);
    total_ += p.numel();
  }
}

void ExactGradSum::take_micro_batch() {
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i].second;
    Tensor g = p.grad();
    if (!g.defined()) continue;
    taken_[i].push_back(std::move(g));
    p.zero_grad();
  }
}

// Tensor i's sum over this process's micro-batches: into its grad when it runs alone, else
// into fixed_ for the reduction.
void ExactGradSum::sum_local(size_t i, int bits, bool across) {
  const int32_t e = exponents_[i];
  const Tensor& p = params_[i].second;
  const int64_t n = p.numel();
  if (e != kNoGrad) {
    // The result goes into a grad storage this process already holds, or a fresh one.
    p.impl()->grad =
        taken_[i].empty() ? std::make_shared<Storage>(n) : taken_[i].front().impl()->storage;
    p.impl()->grad_unwritten = false;
  }
  int64_t* fixed = across ? fixed_.data() + offsets_[i] : nullptr;
  if (e == kNoGrad || e == kAllZero || e == kNonFinite || taken_[i].empty()) {
    if (e == kAllZero || e == kNonFinite) {
      const float v = e == kAllZero ? 0.0f : std::numeric_limits<float>::quiet_NaN();
      std::fill(p.impl()->grad->data, p.impl()->grad->data + n, v);
    }
    if (across) std::fill(fixed, fixed + n, 0);
    return;
  }
  sources_.clear();
  for (const Tensor& g : taken_[i]) sources_.push_back(g.data());
  const double scale = std::ldexp(1.0, 62 - bits - e), unscale = std::ldexp(1.0, e + bits - 62);
  float* result = p.impl()->grad->data;  // may be sources_[0]: each block is read, then written
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n > kParallel)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t begin = b * kBlock, len = std::min(kBlock, n - begin);
    int64_t acc[kBlock];
    sum_block(acc, sources_, begin, len, scale);
    if (across)
      std::copy(acc, acc + len, fixed + begin);
    else
      for (int64_t j = 0; j < len; ++j) result[begin + j] = from_fixed(acc[j], unscale);
  }
}

void ExactGradSum::finish(int64_t micro_batches, const CrossProcess* across) {
  for (size_t i = 0; i < params_.size(); ++i) {
    int32_t e = kNoGrad;
    for (const Tensor& g : taken_[i]) e = std::max(e, exponent_bound(g.data(), g.numel()));
    exponents_[i] = e;
  }
  if (across) {
    across->max(exponents_);
    fixed_.resize(static_cast<size_t>(total_));  // once: a process alone never needs it
  }
  // Headroom for M addends: each |rint(g·2^s)| <= 2^(62 - bits), so M of them stay below 2^62.
  const int bits = std::bit_width(static_cast<uint64_t>(micro_batches - 1));
  for (size_t i = 0; i < params_.size(); ++i) sum_local(i, bits, across != nullptr);
  if (across) {
    across->sum(fixed_);
    for (size_t i = 0; i < params_.size(); ++i) {
      const int32_t e = exponents_[i];
      if (e == kNoGrad || e == kAllZero || e == kNonFinite) continue;
      const Tensor& p = params_[i].second;
      const int64_t n = p.numel();
      const double unscale = std::ldexp(1.0, e + bits - 62);
      const int64_t* fixed = fixed_.data() + offsets_[i];
      float* result = p.impl()->grad->data;
#pragma omp parallel for schedule(static) if (n > kParallel)
      for (int64_t j = 0; j < n; ++j) result[j] = from_fixed(fixed[j], unscale);
    }
  }
  for (auto& t : taken_) t.clear();
}

}  // namespace qkv::optim
