// Internal: what the two sublayer ops (attention.cpp, mlp.cpp) share, over raw rows of C
// channels: GEMM operands in either precision, the residual wrapping (the layer norm before or
// after f, dropout on f's output z, the add) forward and backward, the gradients of a
// projection by blocks of output features, and the checks of the wrapping's tensors.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <type_traits>
#include <utility>

#include "ops/bf16.h"
#include "ops/describe.h"
#include "ops/dropout_mask.h"
#include "ops/gemm.h"
#include "ops/norm_rows.h"
#include "qkv/error.h"
#include "qkv/ops.h"

namespace qkv::sublayer {

// The GEMMs of a sublayer read operands of type T: float, or bf16 (Precision::bf16).
template <class T>
inline constexpr bool is_float = std::is_same_v<T, float>;

// A weight as a GEMM operand of type T (bf16: its copy, made on first use). Call outside
// parallel regions.
template <class T>
inline const T* weight(const Tensor& w) {
  if constexpr (is_float<T>)
    return w.data();
  else
    return bf16_copy(w);
}

// Rows [r0, r1) of an fp32 matrix from: [N, n] as GEMM operands of type T: from itself for
// floats, else rounded into to (the same layout). Returns the base (row 0) of the operand.
template <class T>
inline const T* operand(const float* from, T* to, int64_t n, int64_t r0, int64_t r1) {
  if constexpr (is_float<T>) {
    return from;
  } else {
    convert(to + r0 * n, from + r0 * n, (r1 - r0) * n);
    return to;
  }
}

// One call's wrapping, and what its forward keeps for the backward: f's input u as T (pre:
// layer_norm(x); post: x itself, rounded when T is bf16, null when T is float and f reads x);
// with Norm::post, s = x + dropout(z), the norm's input. mean and rstd: [N], of the normalised
// rows.
template <class T>
struct Wrap {
  Norm norm;
  NormType type;
  int64_t C;
  const float *lw, *lb;  // [C], [C] or null
  float eps;
  const DropoutMask* mask;  // dropout on z: [N, C], or null
  T* u;
  float *s, *mean, *rstd;
};

// Rows [r0, r1) of f's input (see Wrap::u). Returns its base (row 0).
template <class T>
inline const T* input_forward(const Wrap<T>& w, const float* x, int64_t r0, int64_t r1) {
  if (w.norm == Norm::post) return operand(x, w.u, w.C, r0, r1);
  for (int64_t r = r0; r < r1; ++r)
    norm_rows::forward(w.u + r * w.C, w.mean + r, w.rstd + r, x + r * w.C, w.lw, w.lb, w.C, w.eps,
                       w.type);
  return w.u;
}

// Rows [r0, r1) of out set up for f's last GEMM to add onto: x when nothing comes between the
// GEMM and the residual add (pre-norm without dropout). Returns the GEMM's beta.
template <class T>
inline float output_prefill(float* out, const float* x, const Wrap<T>& w, int64_t r0, int64_t r1) {
  if (w.norm == Norm::post || w.mask) return 0.0f;
  std::copy(x + r0 * w.C, x + r1 * w.C, out + r0 * w.C);
  return 1.0f;
}

// Rows [r0, r1) of the output, from f's output z in out (after output_prefill and the GEMM):
// pre: out = x + z∘M; post: s = x + z∘M, out = layer_norm(s).
template <class T>
inline void output_forward(float* out, const float* x, const Wrap<T>& w, int64_t r0, int64_t r1) {
  const int64_t C = w.C;
  if (w.norm == Norm::pre) {
    if (!w.mask) return;  // the GEMM added onto x
    const DropoutMask m = *w.mask;
    for (int64_t e = r0 * C; e < r1 * C; ++e) out[e] = x[e] + out[e] * m(uint64_t(e));
    return;
  }
  if (w.mask) {
    const DropoutMask m = *w.mask;
    for (int64_t e = r0 * C; e < r1 * C; ++e) w.s[e] = x[e] + out[e] * m(uint64_t(e));
  } else {
    for (int64_t e = r0 * C; e < r1 * C; ++e) w.s[e] = x[e] + out[e];
  }
  for (int64_t r = r0; r < r1; ++r)
    norm_rows::forward(out + r * C, w.mean + r, w.rstd + r, w.s + r * C, w.lw, w.lb, C, w.eps,
                       w.type);
}

// Rows [r0, r1) of the backward from dout: dres, the gradient of the residual sum (pre: dout;
// post: the norm's backward of dout, into dres_buf, its weight gradients into the thread's
// partials lnp: [2C] or null), and dz = dres∘M (into dz_buf with dropout, else dres itself).
// Returns the bases of {dres, dz}.
template <class T>
inline std::pair<const float*, const float*> output_backward(float* dres_buf, float* dz_buf,
                                                             float* lnp, const float* dout,
                                                             const Wrap<T>& w, int64_t r0,
                                                             int64_t r1) {
  const int64_t C = w.C;
  const float* dres = dout;
  if (w.norm == Norm::post) {
    for (int64_t r = r0; r < r1; ++r)
      norm_rows::backward({dres_buf + r * C, true}, lnp, lnp ? lnp + C : nullptr, dout + r * C,
                          w.s + r * C, w.lw, w.mean[r], w.rstd[r], C, nullptr, w.type);
    dres = dres_buf;
  }
  if (!w.mask) return {dres, dres};
  const DropoutMask m = *w.mask;
  for (int64_t e = r0 * C; e < r1 * C; ++e) dz_buf[e] = dres[e] * m(uint64_t(e));
  return {dres, dz_buf};
}

// Rows [r0, r1) of dx from d_in, the gradient of f's input: pre: dx = dres + the norm's backward
// of d_in (its weight gradients into lnp); post: dx = dres + d_in. A fresh dx is written.
template <class T>
inline void input_backward(GradOut dx, float* lnp, const float* d_in, const float* dres,
                           const float* x, const Wrap<T>& w, int64_t r0, int64_t r1) {
  const int64_t C = w.C;
  if (w.norm == Norm::pre) {
    for (int64_t r = r0; r < r1; ++r)
      norm_rows::backward(dx.at(r * C), lnp, lnp ? lnp + C : nullptr, d_in + r * C, x + r * C, w.lw,
                          w.mean[r], w.rstd[r], C, dres + r * C, w.type);
  } else if (dx.overwrite) {
    for (int64_t e = r0 * C; e < r1 * C; ++e) dx.data[e] = dres[e] + d_in[e];
  } else if (dx) {
    for (int64_t e = r0 * C; e < r1 * C; ++e) dx.data[e] += dres[e] + d_in[e];
  }
}

// Output features [f0, f1) of the gradients of a projection y = in·Wᵀ + b, with dy: [N, O] rows
// of stride ldy and in: [N, I]:  dW += dyᵀ·in;  db += Σ_rows dy  (fresh grads are written).
// dy_t is dy as a GEMM operand (sublayer::operand), db sums dy itself.
template <class T>
inline void weight_grads(GradOut dW, GradOut db, const float* dy, const T* dy_t, int64_t ldy,
                         const T* in, int64_t N, int64_t I, int64_t f0, int64_t f1) {
  if (f1 <= f0) return;
  if (dW)
    gemm_ld(true, false, f1 - f0, I, N, 1.0f, dy_t + f0, ldy, in, I, dW.beta(), dW.data + f0 * I,
            I);
  if (!db) return;
  if (db.overwrite) std::fill(db.data + f0, db.data + f1, 0.0f);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t f = f0; f < f1; ++f) db.data[f] += dy[n * ldy + f];
}

// Channels [c0, c1) of the norm's weight and bias gradients: the threads' partials lnp:
// [parts, 2C] (weight, then bias) summed in thread order.
inline void norm_grads(GradOut dlw, GradOut dlb, const float* lnp, int parts, int64_t C, int64_t c0,
                       int64_t c1) {
  for (int64_t c = c0; c < c1; ++c) {
    float gw = 0.0f, gb = 0.0f;
    for (int q = 0; q < parts; ++q) {
      gw += lnp[q * 2 * C + c];
      gb += lnp[q * 2 * C + C + c];
    }
    if (dlw) dlw.data[c] = dlw.overwrite ? gw : dlw.data[c] + gw;
    if (dlb) dlb.data[c] = dlb.overwrite ? gb : dlb.data[c] + gb;
  }
}

inline const float* data_or_null(const Tensor& t) { return t.defined() ? t.data() : nullptr; }

// Checks a tensor's shape (an undefined one passes when optional).
inline void check_shape(const char* op, const char* role, const Tensor& t, Shape expected,
                        bool optional = false) {
  QKV_CHECK((optional && !t.defined()) || (t.defined() && t.shape() == expected),
            "{}: {} must be {}", op, describe(role, t), expected);
}

// The wrapping's checks for x's C channels, and dropout's range.
inline void check_residual(const char* op, const Residual& r, int64_t C) {
  check_shape(op, "ln_weight", r.ln_weight, {C});
  check_shape(op, "ln_bias", r.ln_bias, {C}, true);
  QKV_CHECK(r.norm_type == NormType::layernorm || !r.ln_bias.defined(),
            "{}: rmsnorm takes no bias, but ln_bias is given", op);
  QKV_CHECK(r.dropout >= 0.0f && r.dropout < 1.0f, "{}: dropout must be in [0, 1), got {}", op,
            r.dropout);
}

// Each weight gradient is written by one phase of the backward: a tensor passed in two roles
// would be written twice. Undefined tensors are skipped.
inline void check_distinct(const char* op,
                           std::initializer_list<std::pair<const char*, Tensor>> ts) {
  for (auto a = ts.begin(); a != ts.end(); ++a)
    for (auto b = a + 1; b != ts.end(); ++b)
      QKV_CHECK(!a->second.defined() || a->second.impl() != b->second.impl(),
                "{}: one tensor is passed as both {} and {}", op, a->first, b->first);
}

}  // namespace qkv::sublayer
