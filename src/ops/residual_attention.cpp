// residual_self_attention: a pre-norm layer's whole self-attention sublayer as one node,
//   out = x + dropout(proj(attention(qkv(layer_norm(x))))).
// Everything before the weight gradients is local to a sequence (attention mixes the rows of
// one batch element only), so each thread takes whole sequences through the layer norm, the
// qkv GEMM, its heads and the proj GEMM with no barrier; the backward has one, before the
// weight gradients, which sum over all rows.
#include "ops/residual_attention.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "ops/attention.h"
#include "ops/attention_kernels.h"
#include "ops/dropout_mask.h"
#include "ops/gemm.h"
#include "ops/norm_rows.h"
#include "qkv/autograd.h"
#include "qkv/error.h"
#include "qkv/ops.h"

namespace qkv {
namespace {

using attention_kernels::Dims;

float* data_or_null(const Tensor& t) { return t.defined() ? t.data() : nullptr; }

// Shapes and options. d: the heads' dims over the packed qkv (ldq = ldk = 3C); masks: one
// attention-dropout mask per (b, h), or null; resid: the dropout mask of the output, or null.
struct Plan {
  Dims d;
  bool causal;
  float eps;
  const float* pad;  // [B, T] key padding, or null
  const DropoutMask* masks;
  const DropoutMask* resid;
};

struct Weights {
  const float *lw, *lb, *Wqkv, *bqkv, *Wproj, *bproj;  // [C], [C], [3C, C], [3C], [C, C], [C]
};

// Kept for the backward: u = layer_norm(x): [N, C] and the rows' mean, rstd: [N];
// qkv = u·Wqkvᵀ + bqkv: [N, 3C]; P: [B, NH, T, T]; y, the heads' output: [N, C].
struct Saved {
  float *u, *mean, *rstd, *qkv, *P, *y;
};

// Sequences [b0, b1) of the forward. scratch: [2, T, T] for one head at a time.
void sequences_forward(float* out, const Saved& s, float* scratch, const float* x, const Weights& w,
                       const Plan& p, int64_t b0, int64_t b1) {
  const Dims& d = p.d;
  const int64_t T = d.Tq, C = d.C, TT = T * T, r0 = b0 * T, r1 = b1 * T, n = r1 - r0;
  for (int64_t r = r0; r < r1; ++r)
    norm_rows::forward(s.u + r * C, s.mean + r, s.rstd + r, x + r * C, w.lw, w.lb, C, p.eps);
  if (w.bqkv)
    for (int64_t r = r0; r < r1; ++r) std::copy_n(w.bqkv, 3 * C, s.qkv + r * 3 * C);
  gemm_ld(false, true, n, 3 * C, C, s.u + r0 * C, C, w.Wqkv, C, w.bqkv ? 1.0f : 0.0f,
          s.qkv + r0 * 3 * C, 3 * C);
  for (int64_t b = b0; b < b1; ++b)
    for (int64_t h = 0; h < d.NH; ++h) {
      const int64_t bh = b * d.NH + h;
      const float* q = s.qkv + b * T * 3 * C + h * d.HS;
      attention_kernels::head_forward(s.y + b * T * C + h * d.HS, s.P + bh * TT, scratch, q, q + C,
                                      q + 2 * C, p.pad ? p.pad + b * T : nullptr,
                                      p.masks ? p.masks + bh : nullptr, d, p.causal);
    }
  // out = x + bproj + y·Wprojᵀ, the GEMM adding onto the rows set up first; dropout needs the
  // projection alone.
  for (int64_t r = r0; r < r1; ++r) {
    float* o = out + r * C;
    if (!p.resid && w.bproj)
      for (int64_t c = 0; c < C; ++c) o[c] = x[r * C + c] + w.bproj[c];
    else if (!p.resid)
      std::copy_n(x + r * C, C, o);
    else if (w.bproj)
      std::copy_n(w.bproj, C, o);
  }
  gemm_ld(false, true, n, C, C, s.y + r0 * C, C, w.Wproj, C, !p.resid || w.bproj ? 1.0f : 0.0f,
          out + r0 * C, C);
  if (p.resid) {
    const DropoutMask m = *p.resid;
    for (int64_t e = r0 * C; e < r1 * C; ++e) out[e] = x[e] + out[e] * m(static_cast<uint64_t>(e));
  }
}

// Gradients, each optional (null is skipped); a grad flagged ow_* (nothing written yet) is
// written instead of added to.
struct Grads {
  float *dx, *dlw, *dlb, *dWqkv, *dbqkv, *dWproj, *dbproj;
  bool ow_dx, ow_dWqkv, ow_dWproj;
};

// Backward scratch: dz: [N, C] (the projection's output grad, with dropout); dy: [N, C] (the
// heads' output grad); dqkv: [N, 3C]; du: [N, C]; lnp: [threads, 2C] (layer-norm partials);
// heads: [threads, 2, T, T].
struct Scratch {
  float *dz, *dy, *dqkv, *du, *lnp, *heads;
};

// With z = y·Wprojᵀ + bproj and dz = dout∘M (dout without dropout):
//   dWproj += dzᵀ·y;  dbproj += Σ_rows dz;  dy = dz·Wproj;  the heads give dqkv from dy;
//   dWqkv += dqkvᵀ·u;  dbqkv += Σ_rows dqkv;  du = dqkv·Wqkv;  then the layer norm's backward
//   of du (norm_rows.h) plus the residual's dout give dx, and its dlw, dlb.
// Phase 1, whole sequences per thread (as the forward): dz, dy, the heads, du, dx, and per-
// thread layer-norm partials. Phase 2, after a barrier, every thread takes a block of output
// features of dWqkv/dbqkv and of dWproj/dbproj and a block of channels of the layer-norm
// partials, summed in thread order. Fixed sums for a fixed thread count.
void backward(const Grads& g, const Scratch& sc, const float* dout, const float* x, const Saved& s,
              const Weights& w, const Plan& p, int parts) {
  const Dims& d = p.d;
  const int64_t T = d.Tq, C = d.C, N = d.B * T, TT = T * T;
  const bool ln_params = g.dlw || g.dlb;
  const float* dz = p.resid ? sc.dz : dout;
#pragma omp parallel num_threads(parts) if (parts > 1)
  {
    const int t = omp_get_thread_num();
    {
      const auto [b0, b1] = block(d.B, t, parts);
      const int64_t r0 = b0 * T, r1 = b1 * T, n = r1 - r0;
      if (p.resid) {
        const DropoutMask m = *p.resid;
        for (int64_t e = r0 * C; e < r1 * C; ++e) sc.dz[e] = dout[e] * m(static_cast<uint64_t>(e));
      }
      gemm_ld(false, false, n, C, C, dz + r0 * C, C, w.Wproj, C, 0.0f, sc.dy + r0 * C, C);
      float* heads = sc.heads + t * 2 * TT;
      for (int64_t b = b0; b < b1; ++b)
        for (int64_t h = 0; h < d.NH; ++h) {
          const int64_t bh = b * d.NH + h, off = b * T * 3 * C + h * d.HS;
          const float* q = s.qkv + off;
          float* dq = sc.dqkv + off;
          attention_kernels::head_backward(
              dq, dq + C, dq + 2 * C, heads, heads + TT, sc.dy + b * T * C + h * d.HS, q, q + C,
              q + 2 * C, s.P + bh * TT, p.masks ? p.masks + bh : nullptr, d, 0.0f, p.causal);
        }
      if (g.dx || ln_params) {
        gemm_ld(false, false, n, C, 3 * C, sc.dqkv + r0 * 3 * C, 3 * C, w.Wqkv, C, 0.0f,
                sc.du + r0 * C, C);
        float* pdw = ln_params ? sc.lnp + t * 2 * C : nullptr;
        if (pdw) std::fill_n(pdw, 2 * C, 0.0f);
        for (int64_t r = r0; r < r1; ++r)
          norm_rows::backward(g.dx ? g.dx + r * C : nullptr, g.ow_dx, pdw, pdw ? pdw + C : nullptr,
                              sc.du + r * C, x + r * C, w.lw, s.mean[r], s.rstd[r], C,
                              dout + r * C);
      }
    }
#pragma omp barrier
    {
      const auto [f0, f1] = block(3 * C, t, parts);
      if (g.dWqkv)
        gemm_ld(true, false, f1 - f0, C, N, sc.dqkv + f0, 3 * C, s.u, C, g.ow_dWqkv ? 0.0f : 1.0f,
                g.dWqkv + f0 * C, C);
      if (g.dbqkv)
        for (int64_t r = 0; r < N; ++r)
          for (int64_t f = f0; f < f1; ++f) g.dbqkv[f] += sc.dqkv[r * 3 * C + f];
    }
    {
      const auto [c0, c1] = block(C, t, parts);
      if (g.dWproj)
        gemm_ld(true, false, c1 - c0, C, N, dz + c0, C, s.y, C, g.ow_dWproj ? 0.0f : 1.0f,
                g.dWproj + c0 * C, C);
      if (g.dbproj)
        for (int64_t r = 0; r < N; ++r)
          for (int64_t c = c0; c < c1; ++c) g.dbproj[c] += dz[r * C + c];
      if (ln_params)
        for (int q = 0; q < parts; ++q) {
          const float* pq = sc.lnp + q * 2 * C;
          for (int64_t c = c0; c < c1; ++c) {
            if (g.dlw) g.dlw[c] += pq[c];
            if (g.dlb) g.dlb[c] += pq[C + c];
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

bool repeated(std::initializer_list<Tensor> ts) {
  std::vector<const TensorImpl*> seen;
  for (const Tensor& t : ts) {
    if (!t.defined()) continue;
    if (std::find(seen.begin(), seen.end(), t.impl()) != seen.end()) return true;
    seen.push_back(t.impl());
  }
  return false;
}

}  // namespace

Tensor residual_self_attention(const Tensor& x, const Tensor& ln_weight, const Tensor& ln_bias,
                               float eps, const Tensor& w_qkv, const Tensor& b_qkv,
                               const Tensor& w_proj, const Tensor& b_proj, int64_t n_head,
                               const AttentionOptions& options, float resid_dropout,
                               Rng* resid_rng) {
  const char* op = "residual_self_attention";
  QKV_CHECK(x.defined() && x.rank() == 3 && x.numel() > 0, "{}: x is {}; expected [B, T, C]", op,
            describe("x", x));
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2);
  QKV_CHECK(
      ln_weight.defined() && ln_weight.shape() == Shape{C} &&
          (!ln_bias.defined() || ln_bias.shape() == Shape{C}) && w_qkv.defined() &&
          w_qkv.shape() == Shape({3 * C, C}) &&
          (!b_qkv.defined() || b_qkv.shape() == Shape{3 * C}) && w_proj.defined() &&
          w_proj.shape() == Shape({C, C}) && (!b_proj.defined() || b_proj.shape() == Shape{C}),
      "{}: {} needs a layer norm of [{}], qkv [{}, {}] and proj [{}, {}]; got {}, {}, {}, "
      "{}, {}, {}",
      op, describe("x", x), C, 3 * C, C, C, C, describe("ln weight", ln_weight),
      describe("ln bias", ln_bias), describe("qkv weight", w_qkv), describe("qkv bias", b_qkv),
      describe("proj weight", w_proj), describe("proj bias", b_proj));
  QKV_CHECK(n_head > 0 && C % n_head == 0,
            "{}: C = {} channels ({}) are not divisible by n_head = {}", op, C, describe("x", x),
            n_head);
  QKV_CHECK(resid_dropout >= 0.0f && resid_dropout < 1.0f, "{}: dropout must be in [0, 1), got {}",
            op, resid_dropout);
  const int parts = B * T * C * C >= kSplitMin ? omp_get_max_threads() : 1;
  if (repeated({x, ln_weight, ln_bias, w_qkv, b_qkv, w_proj, b_proj}) || B < parts) {
    // Too few sequences to share, or a tensor passed twice: the ops one by one.
    Tensor z =
        linear(packed_self_attention(linear(layer_norm(x, ln_weight, ln_bias, eps), w_qkv, b_qkv),
                                     n_head, options),
               w_proj, b_proj);
    const bool drop = resid_dropout > 0.0f && resid_rng != nullptr;
    return x + (drop ? dropout(z, resid_dropout, true, *resid_rng) : z);
  }
  const Tensor& pad = options.key_padding;
  QKV_CHECK(!pad.defined() || pad.shape() == Shape({B, T}),
            "{}: key_padding is {}, expected [B, T] = [{}, {}] for {}", op,
            pad.defined() ? pad.shape() : Shape{}, B, T, describe("x", x));
  QKV_CHECK(options.dropout >= 0.0f && options.dropout < 1.0f,
            "{}: attention dropout must be in [0, 1), got {}", op, options.dropout);

  // Masks drawn in the order the ops one by one draw them: the heads' (b, h) order, then the
  // output's, so the fused node and its fallback agree.
  std::vector<DropoutMask> masks;
  if (options.dropout > 0.0f && options.rng)
    for (int64_t bh = 0; bh < B * n_head; ++bh)
      masks.emplace_back(DropoutMask::draw_seed(*options.rng), options.dropout);
  DropoutMask resid;
  const bool drop = resid_dropout > 0.0f && resid_rng != nullptr;
  if (drop) resid = DropoutMask(DropoutMask::draw_seed(*resid_rng), resid_dropout);

  const int64_t N = B * T;
  const Dims d{B, T, T, C, n_head, C / n_head, 3 * C, 3 * C};
  Tensor out = Tensor::empty(x.shape()), u = Tensor::empty({N, C}), mean = Tensor::empty({N}),
         rstd = Tensor::empty({N}), qkv = Tensor::empty({N, 3 * C}),
         P = Tensor::empty({B, n_head, T, T}), y = Tensor::empty({N, C});
  const Saved saved{u.data(), mean.data(), rstd.data(), qkv.data(), P.data(), y.data()};
  const Weights w{ln_weight.data(),    data_or_null(ln_bias), w_qkv.data(),
                  data_or_null(b_qkv), w_proj.data(),         data_or_null(b_proj)};
  const Plan plan{d,
                  options.causal,
                  eps,
                  data_or_null(pad),
                  masks.empty() ? nullptr : masks.data(),
                  drop ? &resid : nullptr};
  Tensor scratch = Tensor::empty({parts, 2, T, T});
#pragma omp parallel num_threads(parts) if (parts > 1)
  {
    const int t = omp_get_thread_num();
    const auto [b0, b1] = block(B, t, parts);
    sequences_forward(out.data(), saved, scratch.data() + t * 2 * T * T, x.data(), w, plan, b0, b1);
  }
  record(out, op, {x, ln_weight, ln_bias, w_qkv, b_qkv, w_proj, b_proj},
         [x, ln_weight, ln_bias, w_qkv, b_qkv, w_proj, b_proj, pad, u, mean, rstd, qkv, P, y, masks,
          resid, drop, d, causal = options.causal, eps](const float* dout) {
           Grads g{};
           g.dx = x.grad_to_write(g.ow_dx);
           g.dWqkv = w_qkv.grad_to_write(g.ow_dWqkv);
           g.dWproj = w_proj.grad_to_write(g.ow_dWproj);
           g.dlw = ln_weight.grad_data();
           g.dlb = ln_bias.defined() ? ln_bias.grad_data() : nullptr;
           g.dbqkv = b_qkv.defined() ? b_qkv.grad_data() : nullptr;
           g.dbproj = b_proj.defined() ? b_proj.grad_data() : nullptr;
           const int threads = omp_get_max_threads();
           const int64_t N = d.B * d.Tq, C = d.C;
           Tensor dz = drop ? Tensor::empty({N, C}) : Tensor(), dy = Tensor::empty({N, C}),
                  dqkv = Tensor::empty({N, 3 * C}), du = Tensor::empty({N, C}),
                  lnp = Tensor::empty({threads, 2 * C}),
                  heads = Tensor::empty({threads, 2, d.Tq, d.Tk});
           const Scratch sc{data_or_null(dz), dy.data(),  dqkv.data(),
                            du.data(),        lnp.data(), heads.data()};
           const Saved s{u.data(), mean.data(), rstd.data(), qkv.data(), P.data(), y.data()};
           const Weights w{ln_weight.data(),    data_or_null(ln_bias), w_qkv.data(),
                           data_or_null(b_qkv), w_proj.data(),         data_or_null(b_proj)};
           const Plan p{d,
                        causal,
                        eps,
                        data_or_null(pad),
                        masks.empty() ? nullptr : masks.data(),
                        drop ? &resid : nullptr};
           backward(g, sc, dout, x.data(), s, w, p, threads);
         });
  return out;
}

}  // namespace qkv
