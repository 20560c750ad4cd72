// Learning-rate schedules: plain functions of the iteration, as in nanoGPT's get_lr.
#pragma once

#include <cstdint>

#include "qkv/enum_names.h"
#include "qkv/tensor.h"

namespace qkv::optim {

enum class Decay { cosine, constant, wsd };
// The names of schedule.decay (see qkv/enum_names.h).
constexpr EnumNames<3> enum_names(Decay) { return {"cosine", "constant", "wsd"}; }

struct ScheduleConfig {
  float lr = 1e-3f;
  float min_lr = 1e-4f;
  Decay decay = Decay::cosine;
  int64_t warmup_iters = 100;
  int64_t lr_decay_iters = 2000;
  // wsd: the share of lr_decay_iters, at its end, over which lr falls to min_lr. A double, as
  // bench/ref_optim.py computes the decay's start, so both sides start it at the same step.
  double decay_fraction = 0.2;
};

// Linear warmup lr·(it+1)/(warmup_iters+1) for it < warmup_iters; then (cosine) a half cosine
// from lr down to min_lr at lr_decay_iters and min_lr after it, or (constant) lr, or (wsd,
// warmup-stable-decay) lr until start = lr_decay_iters·(1 - decay_fraction), then a straight
// line from lr at start to min_lr at lr_decay_iters, and min_lr after it. wsd is
// bench/ref_optim.py's lr_at, step for step.
float lr_at(int64_t it, const ScheduleConfig& config);

// Scales every grad so their global L2 norm is at most max_norm (PyTorch's clip_grad_norm_:
// factor max_norm / (norm + 1e-6) when that is < 1). Returns the norm before clipping,
// summed in double in parameter order so it is deterministic.
float clip_grad_norm(const NamedTensors& params, float max_norm);

// The global L2 norm of the grads that clip_grad_norm clips by, leaving the grads as they are.
// Summed in double over fixed blocks in order, so it does not depend on the thread count.
float grad_norm(const NamedTensors& params);
// The factor clip_grad_norm scales the grads by: max_norm / (norm + 1e-6) when that is < 1 (and
// max_norm > 0), else 1.
float clip_factor(float norm, float max_norm);

}  // namespace qkv::optim
