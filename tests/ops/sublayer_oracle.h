// The sublayer ops (qkv::attention, qkv::mlp) composed from the generic ops one by one
// (layer_norm -> linear -> matmul, softmax, masked_fill -> linear -> dropout -> add): the test
// oracle. The same math through different kernels, drawing dropout masks from the rng in the
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

// out = x + dropout(f(layer_norm(x))) (pre) or layer_norm(x + dropout(f(x))) (post).
inline Tensor wrap_oracle(const Tensor& x, const Residual& r,
                          const std::function<Tensor(const Tensor&)>& f) {
  const bool drop = r.dropout > 0.0f && r.rng;
  auto dropped = [&](const Tensor& z) { return drop ? dropout(z, r.dropout, true, *r.rng) : z; };
  if (r.norm == Norm::pre) return x + dropped(f(layer_norm(x, r.ln_weight, r.ln_bias, r.eps)));
  return layer_norm(x + dropped(f(x)), r.ln_weight, r.ln_bias, r.eps);
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
    const Tensor s = mul_scalar(matmul(split_heads(q, NH), split_heads(k, NH), false, true),
                                1.0f / std::sqrt(float(C / NH)));
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
    return linear(gelu(linear(in, m.w_fc, m.b_fc)), m.w_proj, m.b_proj);
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
