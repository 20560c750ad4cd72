// The sublayer ops (qkv::attention, qkv::mlp) composed from the generic ops one by one
// (layer_norm or RMSNorm -> linear -> [qk_norm, rotation] -> matmul, softmax, masked_fill ->
// linear -> dropout -> add): the test oracle. The same math through different kernels, drawing dropout masks from the rng in the
// same order (attention's probabilities first, then the output), so the values and gradients
// must agree to rounding.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "qkv/ops.h"

namespace qkv::testing {

// x / sqrt(mean(x²) + eps) over the last dim, composed (rms_norm's oracle, and qk_norm's).
inline Tensor rms_oracle(const Tensor& x, float eps) {
  const int last = int(x.rank()) - 1;
  return x * pow(add_scalar(mean(x * x, last, true), eps), -0.5f);
}

// out = x + dropout(f(norm(x))) (pre) or norm(x + dropout(f(x))) (post).
inline Tensor wrap_oracle(const Tensor& x, const Residual& r,
                          const std::function<Tensor(const Tensor&)>& f) {
  const bool drop = r.dropout > 0.0f && r.rng;
  auto dropped = [&](const Tensor& z) { return drop ? dropout(z, r.dropout, true, *r.rng) : z; };
  auto norm = [&](const Tensor& t) {
    return r.norm_type == NormType::rmsnorm ? rms_oracle(t, r.eps) * r.ln_weight
                                            : layer_norm(t, r.ln_weight, r.ln_bias, r.eps);
  };
  if (r.norm == Norm::pre) return x + dropped(f(norm(x)));
  return norm(x + dropped(f(x)));
}

// t: [B, NH, T, HS] at positions [first, first + T): the pair (i, i + HS/2) turned by the table's
// angle.
inline Tensor rotate_oracle(const Tensor& t, const Rotary& r, int64_t first) {
  const int64_t T = t.size(2), half = t.size(3) / 2;
  const Tensor c = narrow(r.cos, 0, first, T), s = narrow(r.sin, 0, first, T);
  const Tensor a = narrow(t, 3, 0, half), b = narrow(t, 3, half, half);
  return concat({a * c - b * s, b * c + a * s}, 3);
}

// [B, T, NH·HS] -> [B, NH, T, HS]
inline Tensor split_heads(const Tensor& t, int64_t NH) {
  const int64_t B = t.size(0), T = t.size(1), HS = t.size(2) / NH;
  const int order[] = {0, 2, 1, 3};
  return permute(reshape(t, {B, T, NH, HS}), order);
}

// 1 where query i may not see key j: [B, 1, Tq, Tk].
inline Tensor hidden_keys(int64_t B, int64_t Tq, int64_t Tk, bool causal, const Tensor& pad) {
  Tensor m = Tensor::zeros({B, 1, Tq, Tk});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < Tq; ++i)
      for (int64_t j = 0; j < Tk; ++j)
        m.data()[(b * Tq + i) * Tk + j] =
            (causal && j > i + Tk - Tq) || (pad.defined() && pad.data()[b * Tk + j] != 0) ? 1 : 0;
  return m;
}

inline Tensor attention_oracle(const Tensor& x, const AttentionParams& a) {
  return wrap_oracle(x, a.residual, [&](const Tensor& in) {
    const int64_t B = in.size(0), Tq = in.size(1), C = in.size(2), NH = a.n_head;
    Tensor q, k, v;
    if (a.memory.defined()) {
      q = linear(in, a.w_in, a.b_in);
      const int64_t sizes[] = {C, C};
      const std::vector<Tensor> kv = split(linear(a.memory, a.w_mem, a.b_mem), sizes, 2);
      k = kv[0], v = kv[1];
    } else {
      const int64_t sizes[] = {C, C, C};
      const std::vector<Tensor> qkv = split(linear(in, a.w_in, a.b_in), sizes, 2);
      q = qkv[0], k = qkv[1], v = qkv[2];
    }
    const int64_t Tk = k.size(1);
    const Tensor hidden = hidden_keys(B, Tq, Tk, a.causal, a.key_padding);
    Tensor qh = split_heads(q, NH), kh = split_heads(k, NH);
    if (a.qk_norm) qh = rms_oracle(qh, 1e-5f), kh = rms_oracle(kh, 1e-5f);
    if (a.rotary.defined()) qh = rotate_oracle(qh, a.rotary, 0), kh = rotate_oracle(kh, a.rotary, 0);
    const Tensor s = mul_scalar(matmul(qh, kh, false, true), 1.0f / std::sqrt(float(C / NH)));
    // A row that sees no key: -1e9 everywhere gives a uniform softmax, which 1 - hidden zeroes.
    Tensor p = softmax(masked_fill(s, hidden, -1e9f)) * add_scalar(neg(hidden), 1.0f);
    if (a.probabilities) *a.probabilities = p.detach();
    const Residual& r = a.residual;
    if (r.dropout > 0.0f && r.rng) p = dropout(p, r.dropout, true, *r.rng);
    const int order[] = {0, 2, 1, 3};
    const Tensor o = reshape(permute(matmul(p, split_heads(v, NH)), order), {B, Tq, C});
    return linear(o, a.w_out, a.b_out);
  });
}

inline Tensor mlp_oracle(const Tensor& x, const MlpParams& m) {
  return wrap_oracle(x, m.residual, [&](const Tensor& in) {
    const Tensor h = linear(in, m.w_fc, m.b_fc);
    Tensor g;
    if (m.activation == Activation::gelu) g = gelu(h);
    if (m.activation == Activation::relu2) g = relu(h) * relu(h);
    if (m.activation == Activation::swiglu) g = h * sigmoid(h) * linear(in, m.w_gate, m.b_gate);
    return linear(g, m.w_proj, m.b_proj);
  });
}

// a and b agree to rounding: |a - b| <= tol·max(1, max|b|). Two summation orders of the same
// float32 math differ by ~1e-6 relative per sum; a weight gradient sums a few hundred rows with
// cancellation, so its error is relative to its largest element, not to each element. A wrong
// gradient is off by O(1).
inline void check_close(const Tensor& a, const Tensor& b, const std::string& what,
                        double tol = 1e-4) {
  REQUIRE_MESSAGE(a.defined() == b.defined(), what << ": one side is undefined");
  if (!a.defined()) return;
  REQUIRE_MESSAGE(a.shape() == b.shape(),
                  what << ": shapes " << a.shape().str() << " and " << b.shape().str());
  double scale = 1.0, worst = 0.0;
  int64_t at = 0;
  for (int64_t i = 0; i < b.numel(); ++i) scale = std::max(scale, double(std::abs(b.data()[i])));
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double d = std::abs(double(a.data()[i]) - double(b.data()[i]));
    if (!(d <= worst)) worst = d, at = i;  // NaN counts as worst
  }
  CHECK_MESSAGE(worst <= tol * scale, what << ": element " << at << " differs by " << worst << " ("
                                           << a.data()[at] << " vs " << b.data()[at] << "; scale "
                                           << scale << ")");
}

// A leaf copy of t (undefined stays undefined), for running the oracle on its own inputs.
inline Tensor copy_of(const Tensor& t) {
  return t.defined() ? Tensor::from_vector(t.shape(), t.to_vector(), t.requires_grad()) : Tensor();
}

}  // namespace qkv::testing
