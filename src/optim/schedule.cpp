// Learning-rate schedule and gradient clipping.
#include "qkv/optim/schedule.h"

#include <cmath>
#include <numbers>

namespace qkv::optim {

float lr_at(int64_t it, const ScheduleConfig& c) {
  if (it < c.warmup_iters) return c.lr * float(it + 1) / float(c.warmup_iters + 1);
  if (c.decay == Decay::constant) return c.lr;
  if (it > c.lr_decay_iters) return c.min_lr;
  const double span = double(c.lr_decay_iters - c.warmup_iters);
  const double ratio = span > 0 ? double(it - c.warmup_iters) / span : 1.0;
  const double coeff = 0.5 * (1.0 + std::cos(std::numbers::pi * ratio));
  return static_cast<float>(c.min_lr + coeff * (c.lr - c.min_lr));
}

namespace {

// Σ g² in double over 8 fixed lanes summed in order: vectorisable and deterministic (one running
// double sum is neither fast nor needed for the order to be fixed).
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

}  // namespace

float clip_grad_norm(const std::vector<std::pair<std::string, Tensor>>& params, float max_norm) {
  double sq = 0;
  for (const auto& [name, p] : params)
    if (const float* g = p.grad_data()) sq += sum_squares(g, p.numel());
  const auto norm = static_cast<float>(std::sqrt(sq));
  const float factor = max_norm / (norm + 1e-6f);
  if (max_norm > 0 && factor < 1.0f) {
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
