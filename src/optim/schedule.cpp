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

float clip_grad_norm(const std::vector<std::pair<std::string, Tensor>>& params, float max_norm) {
  double sq = 0;
  for (const auto& [name, p] : params) {
    const float* g = p.grad_data();
    if (!g) continue;
    for (int64_t i = 0; i < p.numel(); ++i) sq += double(g[i]) * double(g[i]);
  }
  const auto norm = static_cast<float>(std::sqrt(sq));
  const float factor = max_norm / (norm + 1e-6f);
  if (max_norm > 0 && factor < 1.0f) {
    for (const auto& [name, p] : params) {
      float* g = p.grad_data();
      if (!g) continue;
      for (int64_t i = 0; i < p.numel(); ++i) g[i] *= factor;
    }
  }
  return norm;
}

}  // namespace qkv::optim
