// Learning-rate schedule and gradient clipping.
#include "qkv/optim/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace qkv::optim {

float lr_at(int64_t it, const ScheduleConfig& c) {
  if (it < c.warmup_iters) return c.lr * float(it + 1) / float(c.warmup_iters + 1);
  if (c.decay == Decay::constant) return c.lr;
  if (it > c.lr_decay_iters) return c.min_lr;
  if (c.decay == Decay::wsd) {
    const double end = double(c.lr_decay_iters), start = end - c.decay_fraction * end;
    if (double(it) < start) return c.lr;
    // end == start only when lr_decay_iters is 0, and then only it = 0 gets here: the end.
    const double ratio = end > start ? (double(it) - start) / (end - start) : 1.0;
    return static_cast<float>(c.lr + ratio * (double(c.min_lr) - c.lr));
  }
  const double span = double(c.lr_decay_iters - c.warmup_iters);
  const double ratio = span > 0 ? double(it - c.warmup_iters) / span : 1.0;
  const double coeff = 0.5 * (1.0 + std::cos(std::numbers::pi * ratio));
  return static_cast<float>(c.min_lr + coeff * (c.lr - c.min_lr));
}

namespace {

// Σ g² in double over 8 fixed lanes summed in order: vectorisable (one running double sum is not).
double sum_squares(const float* g, int64_t n) {
  constexpr int kLanes = 8;
  double acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += double(g[i + l]) * double(g[i + l]);
  for (; i < n; ++i) acc[0] += double(g[i]) * double(g[i]);
  double sum = 0;
  for (double a : acc) sum += a;
  return sum;
}

// Elements per block of the norm: each block's sum is one task, and the blocks' sums are added
// in order, so the threads only change who computes a block.
constexpr int64_t kNormBlock = int64_t{1} << 14;

}  // namespace

float grad_norm(const NamedTensors& params) {
  struct Block {
    const float* g;
    int64_t n;
  };
  std::vector<Block> blocks;
  for (const auto& [name, p] : params)
    if (const float* g = p.grad_data())
      for (int64_t i = 0; i < p.numel(); i += kNormBlock)
        blocks.push_back({g + i, std::min(kNormBlock, p.numel() - i)});
  std::vector<double> sums(blocks.size());
  const auto nb = static_cast<int64_t>(blocks.size());
#pragma omp parallel for schedule(static) if (nb > 1)
  for (int64_t b = 0; b < nb; ++b) sums[b] = sum_squares(blocks[b].g, blocks[b].n);
  double sq = 0;
  for (double s : sums) sq += s;
  return static_cast<float>(std::sqrt(sq));
}

float clip_factor(float norm, float max_norm) {
  const float factor = max_norm / (norm + 1e-6f);
  return max_norm > 0 && factor < 1.0f ? factor : 1.0f;
}

float clip_grad_norm(const NamedTensors& params, float max_norm) {
  const float norm = grad_norm(params);
  const float factor = clip_factor(norm, max_norm);
  if (factor < 1.0f) {
    for (const auto& [name, p] : params) {
      float* g = p.grad_data();
      if (!g) continue;
      const int64_t n = p.numel();
      for (int64_t i = 0; i < n; ++i) g[i] *= factor;
    }
  }
  return norm;
}

}  // namespace qkv::optim
