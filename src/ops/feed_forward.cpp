// feed_forward: y = gelu(x·W1ᵀ + b1)·W2ᵀ + b2 as one node, and residual_feed_forward, the
// whole pre-norm MLP sublayer out = x + dropout(feed_forward(layer_norm(x))). Rows are
// independent until the weight gradients, which sum over all rows: the forward splits rows
// over the threads with no barrier, and the backward has one, between the per-row part and the
// weight gradients.
#include "ops/feed_forward.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <vector>

#include "ops/dropout_mask.h"
#include "ops/gemm.h"
#include "ops/norm_rows.h"
#include "ops/vecmath.h"
#include "qkv/autograd.h"
#include "qkv/error.h"
#include "qkv/ops.h"

namespace qkv {
namespace {

constexpr float kInvSqrt2 = static_cast<float>(1.0 / std::numbers::sqrt2);
constexpr float kInvSqrt2Pi = static_cast<float>(std::numbers::inv_sqrtpi / std::numbers::sqrt2);

// The shapes, and what wraps the MLP: with `norm`, the MLP reads u = layer_norm(x) (weights
// lw, lb) and the output is x + mask(y) (mask: dropout, or none).
struct Plan {
  int64_t N, C, F;  // rows, model channels, hidden features
  bool norm = false;
  float eps = 1e-5f;
  const DropoutMask* mask = nullptr;
};

// The MLP's weights and the layer norm's (null when absent).
struct Weights {
  const float *W1, *b1, *W2, *b2, *lw, *lb;
};

// Tensors the forward keeps for the backward: with h = u·W1ᵀ + b1, g = gelu(h) and
// h' = gelu'(h) = Φ(h) + h·φ(h): [N, F] each (h' is written over h: the backward needs the
// derivative, not h, and computing it next to g shares the exponential); with norm, u: [N, C]
// and the rows' mean and rstd: [N].
struct Saved {
  float *h, *g, *u, *mean, *rstd;  // h holds h' after the forward
};

// Rows [r0, r1) of the forward. x, out: [N, C]; W1: [F, C]; W2: [C, F]; biases [F], [C].
void rows_forward(float* out, const Saved& s, const float* x, const Weights& w, const Plan& p,
                  int64_t r0, int64_t r1) {
  const int64_t n = r1 - r0, C = p.C, F = p.F;
  const float* in = x;  // what the MLP reads
  if (p.norm) {
    for (int64_t r = r0; r < r1; ++r)
      norm_rows::forward(s.u + r * C, s.mean + r, s.rstd + r, x + r * C, w.lw, w.lb, C, p.eps);
    in = s.u;
  }
  if (w.b1)
    for (int64_t r = r0; r < r1; ++r) std::copy_n(w.b1, F, s.h + r * F);
  gemm_ld(false, true, n, F, C, in + r0 * C, C, w.W1, C, w.b1 ? 1.0f : 0.0f, s.h + r0 * F, F);
  float* hb = s.h + r0 * F;
  float* gb = s.g + r0 * F;
  for (int64_t e = 0; e < n * F; ++e) {
    const float z = hb[e] * kInvSqrt2, ez = vecmath::exp(-z * z);  // e^(-h²/2)
    const float cdf = 0.5f * (1.0f + vecmath::erf_with_exp(z, ez));
    gb[e] = hb[e] * cdf;
    hb[e] = cdf + hb[e] * kInvSqrt2Pi * ez;
  }
  // out = [x +] b2 + g·W2ᵀ, the GEMM adding onto the rows set up first; dropout needs y alone.
  const bool onto_x = p.norm && !p.mask;
  for (int64_t r = r0; r < r1; ++r) {
    float* o = out + r * C;
    if (onto_x && w.b2)
      for (int64_t c = 0; c < C; ++c) o[c] = x[r * C + c] + w.b2[c];
    else if (onto_x)
      std::copy_n(x + r * C, C, o);
    else if (w.b2)
      std::copy_n(w.b2, C, o);
  }
  gemm_ld(false, true, n, C, F, gb, F, w.W2, F, onto_x || w.b2 ? 1.0f : 0.0f, out + r0 * C, C);
  if (p.norm && p.mask) {
    const DropoutMask m = *p.mask;
    for (int64_t e = r0 * C; e < r1 * C; ++e) out[e] = x[e] + out[e] * m(static_cast<uint64_t>(e));
  }
}

// Gradients, all optional (null is skipped); a grad flagged in ow (nothing written yet) is
// written instead of added to.
struct Grads {
  float *dx, *dW1, *db1, *dW2, *db2, *dlw, *dlb;
  bool ow_dx, ow_dW1, ow_dW2;
};

// Scratch for the backward: dh: [N, F]; with norm, du: [N, C] and lnp: [threads, 2C] (the
// layer norm's weight-gradient partials); with dropout, dp: [N, C].
struct Scratch {
  float *dh, *du, *lnp, *dp;
};

// Backward. With dp = dy∘M (dy without dropout), dg = dp·W2, dh = dg ∘ gelu'(h),
// gelu'(h) = Φ(h) + h·φ(h), and `in` the MLP's input (u with norm, else x):
//   dW1 += dhᵀ·in;  db1 += Σ_rows dh;  dW2 += dpᵀ·g;  db2 += Σ_rows dp;  d_in = dh·W1.
// Without norm dx += d_in. With norm, d_in flows through the layer norm (as in norm.cpp, with
// xhat = (x - mean)·rstd and gu = d_in·lw: dx += rstd·(gu - mean(gu) - xhat·mean(gu·xhat)),
// dlw += Σ_rows d_in·xhat, dlb += Σ_rows d_in) and the residual adds dy to dx.
// Phase 1, rows per thread: dp, dh, d_in and dx (and the layer norm's partials per thread).
// Phase 2, after a barrier, by output-feature blocks: on an even thread count half the
// threads share dW1/db1 and half dW2/db2 (the same N·C·F multiply-adds each), else each takes
// a block of both; the layer-norm partials are summed in thread order by channel blocks. Every
// sum has a fixed order for a fixed thread count.
void backward(const Grads& gr, const Scratch& sc, const float* dy, const float* x, const Saved& s,
              const Weights& w, const Plan& p, int parts) {
  const int64_t N = p.N, C = p.C, F = p.F;
  const bool first = gr.dW1 || gr.db1, second = gr.dW2 || gr.db2;
  const bool ln_params = p.norm && (gr.dlw || gr.dlb);
  const bool halves = first && second && parts % 2 == 0;
  const float* in = p.norm ? s.u : x;
  const float* dp = p.mask ? sc.dp : dy;
#pragma omp parallel num_threads(parts) if (parts > 1)
  {
    const int t = omp_get_thread_num();
    {
      const auto [r0, r1] = block(N, t, parts);
      const int64_t n = r1 - r0;
      if (p.mask) {
        const DropoutMask m = *p.mask;
        for (int64_t e = r0 * C; e < r1 * C; ++e) sc.dp[e] = dy[e] * m(static_cast<uint64_t>(e));
      }
      float* dhb = sc.dh + r0 * F;
      const float* dgelu = s.h + r0 * F;  // h' (see Saved)
      gemm_ld(false, false, n, F, C, dp + r0 * C, C, w.W2, F, 0.0f, dhb, F);
      for (int64_t e = 0; e < n * F; ++e) dhb[e] *= dgelu[e];
      if (!p.norm) {
        if (gr.dx)
          gemm_ld(false, false, n, C, F, dhb, F, w.W1, C, gr.ow_dx ? 0.0f : 1.0f, gr.dx + r0 * C,
                  C);
      } else if (gr.dx || ln_params) {
        gemm_ld(false, false, n, C, F, dhb, F, w.W1, C, 0.0f, sc.du + r0 * C, C);
        float* pdw = ln_params ? sc.lnp + t * 2 * C : nullptr;
        if (pdw) std::fill_n(pdw, 2 * C, 0.0f);
        for (int64_t r = r0; r < r1; ++r)
          norm_rows::backward(gr.dx ? gr.dx + r * C : nullptr, gr.ow_dx, pdw,
                              pdw ? pdw + C : nullptr, sc.du + r * C, x + r * C, w.lw, s.mean[r],
                              s.rstd[r], C, dy + r * C);
      }
    }
#pragma omp barrier
    int part1 = t, parts1 = parts, part2 = t, parts2 = parts;  // -1: none of that side
    if (halves) {
      parts1 = parts2 = parts / 2;
      part1 = t < parts / 2 ? t : -1;
      part2 = t < parts / 2 ? -1 : t - parts / 2;
    }
    if (first && part1 >= 0) {
      const auto [f0, f1] = block(F, part1, parts1);
      if (gr.dW1)
        gemm_ld(true, false, f1 - f0, C, N, sc.dh + f0, F, in, C, gr.ow_dW1 ? 0.0f : 1.0f,
                gr.dW1 + f0 * C, C);
      if (gr.db1)
        for (int64_t r = 0; r < N; ++r)
          for (int64_t f = f0; f < f1; ++f) gr.db1[f] += sc.dh[r * F + f];
    }
    if (second && part2 >= 0) {
      const auto [c0, c1] = block(C, part2, parts2);
      if (gr.dW2)
        gemm_ld(true, false, c1 - c0, F, N, dp + c0, C, s.g, F, gr.ow_dW2 ? 0.0f : 1.0f,
                gr.dW2 + c0 * F, F);
      if (gr.db2)
        for (int64_t r = 0; r < N; ++r)
          for (int64_t c = c0; c < c1; ++c) gr.db2[c] += dp[r * C + c];
    }
    if (ln_params) {
      const auto [c0, c1] = block(C, t, parts);
      for (int q = 0; q < parts; ++q) {
        const float* pq = sc.lnp + q * 2 * C;
        for (int64_t c = c0; c < c1; ++c) {
          if (gr.dlw) gr.dlw[c] += pq[c];
          if (gr.dlb) gr.dlb[c] += pq[C + c];
        }
      }
    }
  }
}

std::string describe(const char* role, const Tensor& t) {
  if (!t.defined()) return fmt::format("{} (undefined)", role);
  if (t.name().empty()) return fmt::format("{} {}", role, t.shape());
  return fmt::format("{} '{}' {}", role, t.name(), t.shape());
}

float* data_or_null(const Tensor& t) { return t.defined() ? t.data() : nullptr; }

// Checks the MLP's shapes; returns F.
int64_t check_mlp(const char* op, const Tensor& x, const Tensor& w1, const Tensor& b1,
                  const Tensor& w2, const Tensor& b2) {
  QKV_CHECK(x.defined() && w1.defined() && w2.defined() && x.rank() >= 1 && w1.rank() == 2 &&
                w2.rank() == 2,
            "{}: needs x [..., C], w1 [F, C] and w2 [C, F]; got {}, {}, {}", op, describe("x", x),
            describe("w1", w1), describe("w2", w2));
  const int64_t C = x.shape().back(), F = w1.size(0);
  QKV_CHECK(w1.size(1) == C && w2.size(0) == C && w2.size(1) == F,
            "{}: {} has {} features, but {} and {} must be [F, {}] and [{}, F]", op,
            describe("x", x), C, describe("w1", w1), describe("w2", w2), C, C);
  QKV_CHECK(!b1.defined() || b1.shape() == Shape{F}, "{}: {} does not match {}: expected [{}]", op,
            describe("b1", b1), describe("w1", w1), F);
  QKV_CHECK(!b2.defined() || b2.shape() == Shape{C}, "{}: {} does not match {}: expected [{}]", op,
            describe("b2", b2), describe("w2", w2), C);
  return F;
}

// True when some tensor is passed twice (the fused kernels write each grad once per role).
bool repeated(std::initializer_list<Tensor> ts) {
  std::vector<const TensorImpl*> seen;
  for (const Tensor& t : ts) {
    if (!t.defined()) continue;
    if (std::find(seen.begin(), seen.end(), t.impl()) != seen.end()) return true;
    seen.push_back(t.impl());
  }
  return false;
}

// The fused node: the forward over all rows, and the backward recorded on its output.
Tensor run(const char* op, const Tensor& x, const Tensor& w1, const Tensor& b1, const Tensor& w2,
           const Tensor& b2, const Tensor& lw, const Tensor& lb, const Plan& plan, int parts) {
  const int64_t N = plan.N, C = plan.C, F = plan.F;
  Tensor out = Tensor::empty(x.shape()), h = Tensor::empty({N, F}), g = Tensor::empty({N, F});
  Tensor u, mean, rstd;
  if (plan.norm) u = Tensor::empty({N, C}), mean = Tensor::empty({N}), rstd = Tensor::empty({N});
  const Saved saved{h.data(), g.data(), data_or_null(u), data_or_null(mean), data_or_null(rstd)};
  const Weights w{w1.data(),        data_or_null(b1), w2.data(),
                  data_or_null(b2), data_or_null(lw), data_or_null(lb)};
#pragma omp parallel num_threads(parts) if (parts > 1)
  {
    const auto [r0, r1] = block(N, omp_get_thread_num(), parts);
    rows_forward(out.data(), saved, x.data(), w, plan, r0, r1);
  }
  const DropoutMask mask = plan.mask ? *plan.mask : DropoutMask();
  record(
      out, op, {x, w1, b1, w2, b2, lw, lb},
      [x, w1, b1, w2, b2, lw, lb, h, g, u, mean, rstd, plan, mask](const float* dy) {
        Grads gr{};
        gr.dx = x.grad_to_write(gr.ow_dx);
        gr.dW1 = w1.grad_to_write(gr.ow_dW1);
        gr.dW2 = w2.grad_to_write(gr.ow_dW2);
        gr.db1 = b1.defined() ? b1.grad_data() : nullptr;
        gr.db2 = b2.defined() ? b2.grad_data() : nullptr;
        gr.dlw = lw.defined() ? lw.grad_data() : nullptr;
        gr.dlb = lb.defined() ? lb.grad_data() : nullptr;
        const int threads = omp_get_max_threads();
        Tensor dh = Tensor::empty({plan.N, plan.F}), du, lnp, dp;
        if (plan.norm)
          du = Tensor::empty({plan.N, plan.C}), lnp = Tensor::empty({threads, 2 * plan.C});
        if (plan.mask) dp = Tensor::empty({plan.N, plan.C});
        const Scratch sc{dh.data(), data_or_null(du), data_or_null(lnp), data_or_null(dp)};
        const Saved s{h.data(), g.data(), data_or_null(u), data_or_null(mean), data_or_null(rstd)};
        const Weights w{w1.data(),        data_or_null(b1), w2.data(),
                        data_or_null(b2), data_or_null(lw), data_or_null(lb)};
        Plan p = plan;
        p.mask = plan.mask ? &mask : nullptr;
        backward(gr, sc, dy, x.data(), s, w, p, threads);
      });
  return out;
}

}  // namespace

Tensor feed_forward(const Tensor& x, const Tensor& w1, const Tensor& b1, const Tensor& w2,
                    const Tensor& b2) {
  const int64_t F = check_mlp("feed_forward", x, w1, b1, w2, b2);
  const int64_t C = x.shape().back(), N = x.numel() / std::max<int64_t>(C, 1);
  const int parts = N * C * F >= kSplitMin ? omp_get_max_threads() : 1;
  if (repeated({x, w1, b1, w2, b2}) || N < 16 * parts)
    return linear(gelu(linear(x, w1, b1)), w2, b2);
  return run("feed_forward", x, w1, b1, w2, b2, Tensor(), Tensor(), {N, C, F}, parts);
}

Tensor residual_feed_forward(const Tensor& x, const Tensor& ln_weight, const Tensor& ln_bias,
                             float eps, const Tensor& w1, const Tensor& b1, const Tensor& w2,
                             const Tensor& b2, float dropout_p, Rng* rng) {
  const char* op = "residual_feed_forward";
  const int64_t F = check_mlp(op, x, w1, b1, w2, b2);
  const int64_t C = x.shape().back(), N = x.numel() / std::max<int64_t>(C, 1);
  QKV_CHECK(ln_weight.defined() && ln_weight.shape() == Shape{C} &&
                (!ln_bias.defined() || ln_bias.shape() == Shape{C}),
            "{}: {} has {} features, but the layer norm has {} and {}", op, describe("x", x), C,
            describe("weight", ln_weight), describe("bias", ln_bias));
  QKV_CHECK(dropout_p >= 0.0f && dropout_p < 1.0f, "{}: dropout must be in [0, 1), got {}", op,
            dropout_p);
  const bool drop = dropout_p > 0.0f && rng != nullptr;
  const int parts = N * C * F >= kSplitMin ? omp_get_max_threads() : 1;
  if (repeated({x, w1, b1, w2, b2, ln_weight, ln_bias}) || N < 16 * parts) {
    Tensor y = feed_forward(layer_norm(x, ln_weight, ln_bias, eps), w1, b1, w2, b2);
    return x + (drop ? dropout(y, dropout_p, true, *rng) : y);
  }
  DropoutMask mask;
  if (drop) mask = DropoutMask(DropoutMask::draw_seed(*rng), dropout_p);
  Plan plan{N, C, F, true, eps, drop ? &mask : nullptr};
  return run(op, x, w1, b1, w2, b2, ln_weight, ln_bias, plan, parts);
}

}  // namespace qkv
