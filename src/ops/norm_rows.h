// Internal: one row of layer norm or RMSNorm, forward and backward, shared by layer_norm and
// rms_norm (norm.cpp) and the sublayer ops that normalise their input or output (sublayer.h).
// RMSNorm is layer norm with the mean held at 0 (and no bias), so one kernel serves both.
#pragma once

#include <cmath>
#include <cstdint>

#include "ops/vecmath.h"
#include "qkv/autograd.h"
#include "qkv/ops.h"

namespace qkv::norm_rows {

// y = (x - mean)·rstd·w + b, rstd = 1/sqrt(var + eps), var biased (1/C) as in PyTorch; two
// passes (mean, then squared deviations) avoid the cancellation of E[x²] - E[x]². rmsnorm:
// mean = 0, so var = mean(x²).
// x, y, w: [C]; b: [C] or null; y's type Y (float, or bf16 for a bf16 GEMM to read). Stores
// the row's mean and rstd.
template <class Y>
inline void forward(Y* y, float* mean, float* rstd, const float* x, const float* w,
                    const float* b, int64_t C, float eps, NormType type) {
  const float m =
      type == NormType::rmsnorm ? 0.0f : vecmath::lane_sum(x, C) / static_cast<float>(C);
  const float v = vecmath::lane_sum_of(C, [x, m](int64_t c) { return (x[c] - m) * (x[c] - m); }) /
                  static_cast<float>(C);
  const float s = 1.0f / std::sqrt(v + eps);
  if (b)
    for (int64_t c = 0; c < C; ++c) y[c] = Y((x[c] - m) * s * w[c] + b[c]);
  else
    for (int64_t c = 0; c < C; ++c) y[c] = Y((x[c] - m) * s * w[c]);
  *mean = m;
  *rstd = s;
}

// With xhat = (x - mean)·rstd and g = dy·w:
//   dx += rstd·(g - mean(g) - xhat·mean(g·xhat)) (+ extra, a residual's gradient, when set),
//     without the mean(g) term for rmsnorm, whose mean is no function of x;
//   dw += dy·xhat;  db += dy   (each optional: null is skipped).
// A fresh dx is written instead of added to. All rows [C].
inline void backward(GradOut gx, float* dw, float* db, const float* dy, const float* x,
                     const float* w, float mean, float rstd, int64_t C, const float* extra,
                     NormType type) {
  const float m = mean, s = rstd;
  if (float* dx = gx.data) {
    const bool overwrite = gx.overwrite;
    const float mean_g = type == NormType::rmsnorm
                             ? 0.0f
                             : vecmath::lane_dot(dy, w, C) / static_cast<float>(C);
    const float mean_gx =
        vecmath::lane_sum_of(C, [=](int64_t c) { return dy[c] * w[c] * (x[c] - m) * s; }) /
        static_cast<float>(C);
    auto term = [=](int64_t c) { return s * (dy[c] * w[c] - mean_g - (x[c] - m) * s * mean_gx); };
    if (overwrite && extra)
      for (int64_t c = 0; c < C; ++c) dx[c] = term(c) + extra[c];
    else if (overwrite)
      for (int64_t c = 0; c < C; ++c) dx[c] = term(c);
    else if (extra)
      for (int64_t c = 0; c < C; ++c) dx[c] += term(c) + extra[c];
    else
      for (int64_t c = 0; c < C; ++c) dx[c] += term(c);
  }
  if (dw)
    for (int64_t c = 0; c < C; ++c) dw[c] += dy[c] * (x[c] - m) * s;
  if (db)
    for (int64_t c = 0; c < C; ++c) db[c] += dy[c];
}

}  // namespace qkv::norm_rows
