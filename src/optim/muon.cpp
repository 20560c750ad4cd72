// Muon: each part of each hidden matrix is one job (momentum, Newton–Schulz, update), and the
// jobs share the threads.
#include "qkv/optim/muon.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "ops/bf16.h"
#include "qkv/error.h"
#include "qkv/optim/newton_schulz.h"

namespace qkv::optim {

Muon::Muon(std::vector<MuonParam> params, MuonConfig config) : config_(config) {
  for (MuonParam& p : params) {
    const Shape& s = p.param.shape();
    QKV_CHECK(s.rank() == 2, "muon: '{}' is {}; Muon updates matrices only", p.name, s);
    QKV_CHECK(p.parts >= 1 && s[0] % p.parts == 0,
              "muon: '{}' is {}, which does not split into {} blocks of rows", p.name, s, p.parts);
    slots_.push_back({p, Tensor::zeros(s)});
  }
}

void Muon::zero_grad() {
  for (Slot& s : slots_) s.p.param.zero_grad();
}

namespace {

// One part [r, c] of a weight: its grad g, momentum M and weight p (and the weight's bf16 copy
// p16, or null), each at the part's first row. step: -lr · sqrt(max(1, r/c)).
struct Part {
  const float* g;
  float* M;
  float* p;
  bf16* p16;
  int64_t r, c;
  float step;
};

int64_t scratch_floats(const Part& t) { return t.r * t.c + newton_schulz_scratch(t.r, t.c); }

// torch's M.mul_(μ).add_(G, alpha=1-μ) and U = G.mul(1-μ).add_(M, alpha=μ), element by
// element, then p.add_(O, alpha=-lr·scale). scratch: scratch_floats(t), the thread's own; U,
// the Nesterov momentum and then its orthogonalisation, is its first [r, c].
void update_part(const Part& t, float grad_scale, float mu, float one_minus_mu,
                 Precision precision, float* scratch) {
  const int64_t n = t.r * t.c;
  float* U = scratch;
  for (int64_t i = 0; i < n; ++i) {
    const float g = t.g[i] * grad_scale;
    t.M[i] = t.M[i] * mu + one_minus_mu * g;
    U[i] = g * one_minus_mu + mu * t.M[i];
  }
  newton_schulz(U, U, t.r, t.c, precision, scratch + n);
  for (int64_t i = 0; i < n; ++i) {
    t.p[i] += t.step * U[i];
    if (t.p16) t.p16[i] = bf16(t.p[i]);
  }
}

}  // namespace

void Muon::step(double lr, float grad_scale) {
  const auto mu = float(config_.momentum), one_minus_mu = float(1.0 - config_.momentum);
  std::vector<Part> parts;
  std::vector<bf16*> copies;  // current bf16 copies, written alongside the weights
  int64_t most = 0;           // scratch floats of the largest part
  for (Slot& s : slots_) {
    const float* g = s.p.param.grad_data();
    copies.push_back(g ? current_bf16_copy(s.p.param) : nullptr);
    if (!g) continue;
    const int64_t r = s.p.param.shape()[0] / s.p.parts, c = s.p.param.shape()[1];
    const float step = float(-lr * std::sqrt(std::max(1.0, double(r) / double(c))));
    float* p = s.p.param.data();
    for (int64_t k = 0; k < s.p.parts; ++k) {
      const int64_t off = k * r * c;
      parts.push_back({g + off, s.momentum.data() + off, p + off,
                       copies.back() ? copies.back() + off : nullptr, r, c, step});
      most = std::max(most, scratch_floats(parts.back()));
    }
  }
  // The largest first, so that no thread is left with a big one at the end.
  std::vector<size_t> order(parts.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return parts[a].r * parts[a].c > parts[b].r * parts[b].c;
  });
  // A part's job overwrites its scratch before reading it, so which thread's it uses does not
  // matter; one per thread keeps the scratch at a few parts' size, not all of theirs.
  const auto jobs = static_cast<int64_t>(order.size());
  const int threads = omp_get_max_threads();
  Tensor scratch = Tensor::empty({std::max<int64_t>(1, most * threads)});
  float* const base = scratch.data();
#pragma omp parallel for schedule(dynamic, 1) if (jobs > 1)
  for (int64_t j = 0; j < jobs; ++j) {
    const size_t i = order[size_t(j)];
    update_part(parts[i], grad_scale, mu, one_minus_mu, config_.precision,
                base + most * omp_get_thread_num());
  }
  for (size_t k = 0; k < slots_.size(); ++k)
    if (copies[k]) bf16_copy_written(slots_[k].p.param);
}

NamedTensors Muon::state() const {
  NamedTensors out;
  for (const Slot& s : slots_) out.emplace_back("momentum." + s.p.name, s.momentum);
  return out;
}

void Muon::load_state(const NamedTensors& state) {
  copy_named(state, this->state(), "optimizer state", "parameter");
}

}  // namespace qkv::optim
