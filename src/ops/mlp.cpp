// mlp: the MLP sublayer (qkv/ops.h) as one node. Rows are independent until the weight
// gradients, which sum over all rows: the forward takes each thread's rows through the norm,
// the GEMMs, the activation and the residual with no barrier, and the backward has one, between the
// rows and the weight gradients.
#include <omp.h>

#include <cmath>
#include <numbers>

#include "ops/pointwise.h"
#include "ops/sublayer.h"
#include "ops/vecmath.h"
#include "qkv/autograd.h"

namespace qkv {
namespace {

constexpr float kInvSqrt2 = static_cast<float>(1.0 / std::numbers::sqrt2);
constexpr float kInvSqrt2Pi = static_cast<float>(std::numbers::inv_sqrtpi / std::numbers::sqrt2);

// One call's pointers, with GEMM operands of type T (float, or bf16). With h = in·W1ᵀ + b1
// (in: see sublayer::Wrap::u) and g = act(h), the forward keeps g (as T: only GEMMs read it) and
// in h the factor dh/dg: act'(h) for gelu (Φ(h) + h·φ(h)) and relu2 (2·relu(h)), and for swiglu,
// g = silu(h)·a with a = in·W3ᵀ + b3, a·silu'(h), with silu(h) (the factor da/dg) over a. The
// backward needs these factors, not h, and computing them next to g shares the exponential.
template <class T>
struct Plan {
  int64_t N, C, F;
  Activation act;
  sublayer::Wrap<T> wrap;
  const float* x;             // [N, C]
  const T *W1, *W2, *W3;      // [F, C], [C, F], [F, C] (swiglu; else null)
  const float *b1, *b2, *b3;  // [F], [C], [F], or null
  float *h, *a;               // [N, F]; a: swiglu only
  T* g;
};

// In place over n elements: h becomes dg/dh (and a, dg/da), g = act(h) (see Plan).
template <class T>
void activate(Activation act, float* h, float* a, T* g, int64_t n) {
  if (act == Activation::gelu) {
    for (int64_t e = 0; e < n; ++e) {
      const float z = h[e] * kInvSqrt2, ez = vecmath::exp(-z * z);  // e^(-h²/2)
      const float cdf = 0.5f * (1.0f + vecmath::erf_with_exp(z, ez));
      g[e] = T(h[e] * cdf);
      h[e] = cdf + h[e] * kInvSqrt2Pi * ez;
    }
  } else if (act == Activation::relu2) {
    for (int64_t e = 0; e < n; ++e) {
      const float r = std::max(h[e], 0.0f);
      g[e] = T(r * r);
      h[e] = 2.0f * r;
    }
  } else {  // sigmoid from e^-|h|, which cannot overflow: silu'(h) = σ(h)·(1 + h·(1 - σ(h)))
    for (int64_t e = 0; e < n; ++e) {
      const float ex = vecmath::exp(-std::abs(h[e])), inv = 1.0f / (1.0f + ex);
      const float sg = h[e] >= 0.0f ? inv : ex * inv, silu = h[e] * sg;
      g[e] = T(silu * a[e]);
      h[e] = sg * (1.0f + h[e] * (1.0f - sg)) * a[e];
      a[e] = silu;
    }
  }
}

// Rows [r0, r1) of the forward.
template <class T>
void rows_forward(float* out, const Plan<T>& p, int64_t r0, int64_t r1) {
  const int64_t n = r1 - r0, C = p.C, F = p.F;
  const T* in = sublayer::input_forward(p.wrap, p.x, r0, r1);
  gemm_ld(false, true, n, F, C, 1.0f, in + r0 * C, C, p.W1, C, 0.0f, p.h + r0 * F, F, p.b1);
  if (p.W3)
    gemm_ld(false, true, n, F, C, 1.0f, in + r0 * C, C, p.W3, C, 0.0f, p.a + r0 * F, F, p.b3);
  activate(p.act, p.h + r0 * F, p.a ? p.a + r0 * F : nullptr, p.g + r0 * F, n * F);
  const float beta = sublayer::output_prefill(out, p.x, p.wrap, r0, r1);
  gemm_ld(false, true, n, C, F, 1.0f, p.g + r0 * F, F, p.W2, F, beta, out + r0 * C, C, p.b2);
  sublayer::output_forward(out, p.x, p.wrap, r0, r1);
}

// Where the backward puts the gradients, and its scratch: dres, dz: [N, C] (see
// sublayer::output_backward), dh, da: [N, F] (da: swiglu only), du: [N, C], lnp: [threads, 2C];
// dz_t, dh_t, da_t: dz, dh and da as GEMM operands (bf16 only).
template <class T>
struct Grads {
  GradOut dx, dW1, db1, dW2, db2, dlw, dlb, dW3, db3;
  float *dres, *dz, *dh, *da, *du, *lnp;
  T *dz_t, *dh_t, *da_t;
};

// With dz from dout (sublayer.h) and dg = dz·W2: dh = dg∘(dg/dh), da = dg∘(dg/da) (swiglu; the
// factors the forward kept), d_in = dh·W1 (+ da·W3), then dx (sublayer.h):
//   dW1 += dhᵀ·in;  db1 += Σ_rows dh;  dW2 += dzᵀ·g;  db2 += Σ_rows dz;  dW3 += daᵀ·in;
//   db3 += Σ_rows da.
// After the barrier, on an even thread count, half the threads share dW1 and db1 and half dW2
// and db2 (the same N·C·F multiply-adds each, in larger GEMMs than every thread taking a block
// of both, which is faster: docs/kernels.md).
template <class T>
void backward(const Grads<T>& gr, const float* dout, const Plan<T>& p, int t, int parts) {
  const int64_t N = p.N, C = p.C, F = p.F;
  const bool ln_grads = gr.dlw || gr.dlb, pre = p.wrap.norm == Norm::pre;
  float* lnp = ln_grads ? gr.lnp + t * 2 * C : nullptr;
  if (lnp) std::fill_n(lnp, 2 * C, 0.0f);
  const auto [r0, r1] = block(N, t, parts);
  const int64_t n = r1 - r0;
  const auto [dres, dz] = sublayer::output_backward(gr.dres, gr.dz, lnp, dout, p.wrap, r0, r1);
  const T* dz_t = sublayer::operand(dz, gr.dz_t, C, r0, r1);
  float* dhb = gr.dh + r0 * F;
  const float* dgdh = p.h + r0 * F;  // see Plan
  gemm_ld(false, false, n, F, C, 1.0f, dz_t + r0 * C, C, p.W2, F, 0.0f, dhb, F);
  // da first, while dhb still holds dg. Each is rounded for the GEMMs in the same pass (in
  // bf16); the fp32 ones are kept for the bias gradients.
  const T* da_t = gr.da_t ? gr.da_t : reinterpret_cast<const T*>(gr.da);
  if (p.W3) {
    float* dab = gr.da + r0 * F;
    const float* dgda = p.a + r0 * F;
    for (int64_t e = 0; e < n * F; ++e) dab[e] = dhb[e] * dgda[e];
    if constexpr (!sublayer::is_float<T>) convert(gr.da_t + r0 * F, dab, n * F);
  }
  const T* dh_t = gr.dh_t ? gr.dh_t : reinterpret_cast<const T*>(gr.dh);
  if constexpr (sublayer::is_float<T>) {
    for (int64_t e = 0; e < n * F; ++e) dhb[e] *= dgdh[e];
  } else {
    T* dht = gr.dh_t + r0 * F;
    for (int64_t e = 0; e < n * F; ++e) dhb[e] *= dgdh[e], dht[e] = T(dhb[e]);
  }
  if (gr.dx || (pre && ln_grads)) {
    gemm_ld(false, false, n, C, F, 1.0f, dh_t + r0 * F, F, p.W1, C, 0.0f, gr.du + r0 * C, C);
    if (p.W3)
      gemm_ld(false, false, n, C, F, 1.0f, da_t + r0 * F, F, p.W3, C, 1.0f, gr.du + r0 * C, C);
    sublayer::input_backward(gr.dx, lnp, gr.du, dres, p.x, p.wrap, r0, r1);
  }
#pragma omp barrier
  // bf16 GEMMs over many rows run faster split by features than one whole per thread, fp32 and
  // short ones the other way round (docs/kernels.md).
  const bool halves = parts % 2 == 0 && (sublayer::is_float<T> || N < 4096);
  const int side = halves ? t / (parts / 2) : -1, part = halves ? t % (parts / 2) : t;
  const int share = halves ? parts / 2 : parts;
  const T* in = p.wrap.u ? p.wrap.u : reinterpret_cast<const T*>(p.x);  // see Wrap::u
  if (side != 1) {
    const auto [f0, f1] = block(F, part, share);
    sublayer::weight_grads(gr.dW1, gr.db1, gr.dh, dh_t, F, in, N, C, f0, f1);
    if (p.W3) sublayer::weight_grads(gr.dW3, gr.db3, gr.da, da_t, F, in, N, C, f0, f1);
  }
  if (side != 0) {
    const auto [c0, c1] = block(C, part, share);
    sublayer::weight_grads(gr.dW2, gr.db2, dz, dz_t, C, p.g, N, F, c0, c1);
  }
  const auto [c0, c1] = block(C, t, parts);
  if (ln_grads) sublayer::norm_grads(gr.dlw, gr.dlb, gr.lnp, parts, C, c0, c1);
}

// The node: the forward over all rows, and the backward recorded on its output, with GEMM
// operands of type T.
template <class T>
Tensor run(const Tensor& x, const MlpParams& m, int64_t N, int64_t C, int64_t F,
           const DropoutMask* mask) {
  const Residual& res = m.residual;
  const bool pre = res.norm == Norm::pre, own_u = pre || !sublayer::is_float<T>;
  Tensor u = own_u ? empty_of<T>(N * C) : Tensor(), s = pre ? Tensor() : Tensor::empty({N, C});
  Tensor mean = Tensor::empty({N}), rstd = Tensor::empty({N});
  Tensor h = Tensor::empty({N, F}), g = empty_of<T>(N * F), out = Tensor::empty(x.shape());
  const bool gated = m.activation == Activation::swiglu;
  Tensor a = gated ? Tensor::empty({N, F}) : Tensor();
  Plan<T> p{N, C, F, m.activation};
  p.wrap = {res.norm,          res.norm_type, C,
            res.ln_weight.data(), sublayer::data_or_null(res.ln_bias),
            res.eps,           mask,          data_of<T>(u),
            pre ? nullptr : s.data(), mean.data(), rstd.data()};
  p.x = x.data(), p.W1 = sublayer::weight<T>(m.w_fc), p.W2 = sublayer::weight<T>(m.w_proj);
  p.b1 = sublayer::data_or_null(m.b_fc), p.b2 = sublayer::data_or_null(m.b_proj);
  p.W3 = gated ? sublayer::weight<T>(m.w_gate) : nullptr, p.b3 = sublayer::data_or_null(m.b_gate);
  p.h = h.data(), p.a = data_of<float>(a), p.g = data_of<T>(g);
  const int parts = N * C * F >= kSplitMin ? omp_get_max_threads() : 1;
  on_parts(parts, [&](int t, int n_parts) {
    const auto [r0, r1] = block(N, t, n_parts);
    rows_forward(out.data(), p, r0, r1);
  });
  const DropoutMask drop = mask ? *mask : DropoutMask();
  record(out, "mlp",
         {x, res.ln_weight, res.ln_bias, m.w_fc, m.b_fc, m.w_proj, m.b_proj, m.w_gate, m.b_gate},
         [x, m, u, s, mean, rstd, h, a, g, p, drop, parts](const float* dout, GradOuts grads) {
           const Residual& r = m.residual;
           Grads<T> gr{};  // in record's argument order
           gr.dx = grads[0], gr.dlw = grads[1], gr.dlb = grads[2];
           gr.dW1 = grads[3], gr.db1 = grads[4], gr.dW2 = grads[5], gr.db2 = grads[6];
           gr.dW3 = grads[7], gr.db3 = grads[8];
           const int64_t N = p.N, C = p.C, F = p.F;
           const bool wide = !sublayer::is_float<T>;
           Tensor dres = r.norm == Norm::post ? Tensor::empty({N, C}) : Tensor();
           Tensor dz = p.wrap.mask ? Tensor::empty({N, C}) : Tensor();
           Tensor dh = Tensor::empty({N, F}), du = Tensor::empty({N, C});
           Tensor lnp = Tensor::empty({parts, 2 * C});
           Tensor dz_t = wide ? empty_of<T>(N * C) : Tensor(),
                  dh_t = wide ? empty_of<T>(N * F) : Tensor();
           Tensor da = p.W3 ? Tensor::empty({N, F}) : Tensor();
           Tensor da_t = p.W3 && wide ? empty_of<T>(N * F) : Tensor();
           gr.dres = dres.defined() ? dres.data() : nullptr;
           gr.dz = dz.defined() ? dz.data() : nullptr;
           gr.dh = dh.data(), gr.du = du.data(), gr.lnp = lnp.data();
           gr.dz_t = data_of<T>(dz_t), gr.dh_t = data_of<T>(dh_t);
           gr.da = data_of<float>(da), gr.da_t = data_of<T>(da_t);
           Plan<T> q = p;  // the mask lives in this closure now
           q.wrap.mask = q.wrap.mask ? &drop : nullptr;
#pragma omp parallel num_threads(parts) if (parts > 1)
           backward(gr, dout, q, omp_get_thread_num(), parts);
         });
  return out;
}

}  // namespace

Tensor mlp(const Tensor& x, const MlpParams& m) {
  const char* op = "mlp";
  QKV_CHECK(x.defined() && x.rank() >= 1 && x.numel() > 0, "{}: {}; expected [..., C]", op,
            describe("x", x));
  const int64_t C = x.shape().back(), N = x.numel() / C;
  QKV_CHECK(m.w_fc.defined() && m.w_fc.rank() == 2 && m.w_fc.size(1) == C,
            "{}: {} must be [F, {}] for {}", op, describe("w_fc", m.w_fc), C,
            describe("x", x));
  const int64_t F = m.w_fc.size(0);
  sublayer::check_shape(op, "b_fc", m.b_fc, {F}, true);
  sublayer::check_shape(op, "w_proj", m.w_proj, {C, F});
  sublayer::check_shape(op, "b_proj", m.b_proj, {C}, true);
  if (m.activation == Activation::swiglu) {
    sublayer::check_shape(op, "w_gate", m.w_gate, {F, C});
    sublayer::check_shape(op, "b_gate", m.b_gate, {F}, true);
  } else {
    QKV_CHECK(!m.w_gate.defined() && !m.b_gate.defined(),
              "{}: w_gate and b_gate are for swiglu; the activation is {}", op,
              enum_name(m.activation));
  }
  const Residual& res = m.residual;
  sublayer::check_residual(op, res, C);
  sublayer::check_distinct(op, {{"ln_weight", res.ln_weight},
                                {"ln_bias", res.ln_bias},
                                {"w_fc", m.w_fc},
                                {"b_fc", m.b_fc},
                                {"w_proj", m.w_proj},
                                {"b_proj", m.b_proj},
                                {"w_gate", m.w_gate},
                                {"b_gate", m.b_gate}});
  DropoutMask mask;
  const bool drop = res.dropout > 0.0f && res.rng;
  if (drop) mask = DropoutMask(DropoutMask::draw_seed(*res.rng), res.dropout);
  return m.precision == Precision::bf16 ? run<bf16>(x, m, N, C, F, drop ? &mask : nullptr)
                                        : run<float>(x, m, N, C, F, drop ? &mask : nullptr);
}

}  // namespace qkv
