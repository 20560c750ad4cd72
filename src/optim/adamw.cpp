// AdamW: one fused pass over all parameters.
#include "qkv/optim/adamw.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/bf16.h"
#include "qkv/error.h"

namespace qkv::optim {

AdamW::AdamW(NamedTensors params, AdamWConfig config) : config_(config) {
  for (auto& [name, p] : params) {
    const bool decay = config.decay_all || p.rank() >= 2;
    slots_.push_back({name, p, Tensor::zeros(p.shape()), Tensor::zeros(p.shape()), decay});
  }
}

void AdamW::zero_grad() {
  for (Slot& s : slots_) s.param.zero_grad();
}

// PyTorch's _single_tensor_adamw, element by element, on the grad g·s (s: the clip factor):
//   p *= 1 - lr·wd;  m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g²
//   p -= (lr / (1-β1^t)) · m / (sqrt(v) / sqrt(1-β2^t) + eps)
// With kRound, also p16 = bf16(p): the copy bf16 GEMMs read (TensorImpl::bf16), updated in the
// same pass instead of in one of its own.
template <bool kRound>
static void adamw_update(float* p, bf16* p16, float* m, float* v, const float* g, float s,
                         int64_t n, float lr, float wd, float b1, float b2, float eps,
                         float step_size, float bc2_sqrt) {
  const float decay = 1.0f - lr * wd;
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i] * s;
    p[i] *= decay;
    m[i] = b1 * m[i] + (1.0f - b1) * gi;
    v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
    p[i] -= step_size * m[i] / (std::sqrt(v[i]) / bc2_sqrt + eps);
    if constexpr (kRound) p16[i] = bf16(p[i]);
  }
}

// All parameters as one index range split over the threads, so the whole update is one
// parallel region whatever the sizes of the tensors; elementwise, so any split gives the same
// result.
void AdamW::step(float lr, float grad_scale) {
  ++step_;
  const auto& c = config_;
  const double bc1 = 1.0 - std::pow(double(c.beta1), double(step_));
  const double bc2 = 1.0 - std::pow(double(c.beta2), double(step_));
  const auto step_size = static_cast<float>(lr / bc1);
  const auto bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  std::vector<int64_t> start(slots_.size() + 1, 0);  // slot k covers [start[k], start[k + 1])
  std::vector<bf16*> copies(slots_.size());          // current bf16 copies, updated alongside
  for (size_t k = 0; k < slots_.size(); ++k) {
    start[k + 1] = start[k] + slots_[k].param.numel();
    copies[k] = current_bf16_copy(slots_[k].param);
  }
  const int64_t total = start.back();
#pragma omp parallel if (total >= 16384)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t lo = total * t / nt, hi = total * (t + 1) / nt;
    for (size_t k = 0; k < slots_.size(); ++k) {
      const int64_t a = std::max(lo, start[k]), b = std::min(hi, start[k + 1]);
      Slot& s = slots_[k];
      const float* g = s.param.grad_data();
      if (a >= b || !g) continue;
      const int64_t off = a - start[k];
      bf16* p16 = copies[k] ? copies[k] + off : nullptr;
      (p16 ? adamw_update<true> : adamw_update<false>)(s.param.data() + off, p16, s.m.data() + off,
                                                       s.v.data() + off, g + off, grad_scale, b - a,
                                                       lr, s.decay ? c.weight_decay : 0.0f, c.beta1,
                                                       c.beta2, c.eps, step_size, bc2_sqrt);
    }
  }
  for (size_t k = 0; k < slots_.size(); ++k)
    if (copies[k]) bf16_copy_written(slots_[k].param);
}

NamedTensors AdamW::state() const {
  NamedTensors out;
  for (const Slot& s : slots_) {
    out.emplace_back("m." + s.name, s.m);
    out.emplace_back("v." + s.name, s.v);
  }
  return out;
}

void AdamW::load_state(const NamedTensors& state, int64_t step_count) {
  QKV_CHECK(step_count >= 0, "optimizer state: negative step count {}", step_count);
  copy_named(state, this->state(), "optimizer state", "parameter");
  step_ = step_count;
}

}  // namespace qkv::optim
