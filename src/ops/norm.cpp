// layer_norm over the last dim, fused into one node. x, y: [N, C] with N = numel / C.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "ops/describe.h"
#include "ops/norm_rows.h"
#include "ops/pointwise.h"
#include "qkv/error.h"
#include "qkv/ops.h"

namespace qkv {

// Rows of layer norm (ops/norm_rows.h: y = (x - mean)·rstd·w + b, var biased as in PyTorch).
// x, y: [N, C]; w: [C]; b: [C] or null; mean, rstd: [N] (saved for the backward).
static void layer_norm_forward(float* y, float* mean, float* rstd, const float* x, const float* w,
                               const float* b, int64_t N, int64_t C, float eps) {
  for_index(N, N * C >= kParallelMin, [=](int64_t n) {
    norm_rows::forward(y + n * C, mean + n, rstd + n, x + n * C, w, b, C, eps);
  });
}

// The rows' backward (ops/norm_rows.h): dx += rstd·(g - mean(g) - xhat·mean(g·xhat)) with
// g = dy·w; dw += Σ_rows dy·xhat; db += Σ_rows dy. dx, dy, x: [N, C]; dw, db, w: [C];
// mean, rstd: [N]. Null grad pointers are skipped.
// Note: dw/db go through per-thread partials (partial: [n_parts, 2C], ignored when both are null)
// summed in thread order, so they are deterministic for a fixed thread count.
static void layer_norm_backward(GradOut dx, float* dw, float* db, float* partial, int n_parts,
                                const float* dy, const float* x, const float* w, const float* mean,
                                const float* rstd, int64_t N, int64_t C) {
  const bool params = dw || db;
  if (params) std::fill_n(partial, n_parts * 2 * C, 0.0f);
#pragma omp parallel num_threads(n_parts)
  {
    float* pdw = params ? partial + omp_get_thread_num() * 2 * C : nullptr;
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n)
      norm_rows::backward(dx.at(n * C), pdw, pdw ? pdw + C : nullptr, dy + n * C, x + n * C, w,
                          mean[n], rstd[n], C, nullptr);
  }
  if (!params) return;
  for (int t = 0; t < n_parts; ++t) {
    const float* pdw = partial + t * 2 * C;
    const float* pdb = pdw + C;
    for (int64_t c = 0; c < C; ++c) {
      if (dw) dw[c] += pdw[c];
      if (db) db[c] += pdb[c];
    }
  }
}

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) {
  QKV_CHECK(x.rank() >= 1 && x.shape().back() > 0,
            "layer_norm: input of shape {} has no last dim to normalise over", x.shape());
  const int64_t C = x.shape().back(), N = x.numel() / C;
  QKV_CHECK(weight.defined(), "layer_norm: weight is undefined (only the bias is optional)");
  QKV_CHECK(weight.shape() == Shape{C}, "layer_norm: input {} has {} features, so {} must be [{}]",
            x.shape(), C, describe("weight", weight), C);
  QKV_CHECK(!bias.defined() || bias.shape() == Shape{C},
            "layer_norm: input {} has {} features, so {} must be [{}]", x.shape(), C,
            describe("bias", bias), C);

  Tensor y = Tensor::empty(x.shape()), mean = Tensor::empty({N}), rstd = Tensor::empty({N});
  layer_norm_forward(y.data(), mean.data(), rstd.data(), x.data(), weight.data(),
                     bias.defined() ? bias.data() : nullptr, N, C, eps);
  record(y, "layer_norm", {x, weight, bias},
         [x, weight, mean, rstd, N, C](const float* dy, GradOuts g) {
           float* dw = zero_if_fresh(g[1], C);
           float* db = zero_if_fresh(g[2], C);
           const int n_parts = omp_get_max_threads();
           Tensor partial;
           if (dw || db) partial = Tensor::empty({n_parts, 2 * C});
           layer_norm_backward(g[0], dw, db, partial.defined() ? partial.data() : nullptr, n_parts,
                               dy, x.data(), weight.data(), mean.data(), rstd.data(), N, C);
         });
  return y;
}

}  // namespace qkv
