// layer_norm and rms_norm over the last dim, each fused into one node. x, y: [N, C] with
// N = numel / C.
#include <omp.h>

#include <algorithm>
#include <cstdint>

#include "ops/describe.h"
#include "ops/norm_rows.h"
#include "ops/pointwise.h"
#include "qkv/error.h"
#include "qkv/ops.h"

namespace qkv {

// Rows of layer norm (ops/norm_rows.h: y = (x - mean)·rstd·w + b, var biased as in PyTorch;
// rmsnorm: mean = 0). x, y: [N, C]; w: [C]; b: [C] or null; mean, rstd: [N] (saved for the
// backward).
static void norm_forward(float* y, float* mean, float* rstd, const float* x, const float* w,
                         const float* b, int64_t N, int64_t C, float eps, NormType type) {
  for_index(N, N * C >= kParallelMin, [=](int64_t n) {
    norm_rows::forward(y + n * C, mean + n, rstd + n, x + n * C, w, b, C, eps, type);
  });
}

// The rows' backward (ops/norm_rows.h): dx += rstd·(g - mean(g) - xhat·mean(g·xhat)) with
// g = dy·w (no mean(g) for rmsnorm); dw += Σ_rows dy·xhat; db += Σ_rows dy. dx, dy, x: [N, C];
// dw, db, w: [C]; mean, rstd: [N]. Null grad pointers are skipped.
// Note: dw/db go through per-thread partials (partial: [n_parts, 2C], ignored when both are null)
// summed in thread order, so they are deterministic for a fixed thread count.
static void norm_backward(GradOut dx, float* dw, float* db, float* partial, int n_parts,
                          const float* dy, const float* x, const float* w, const float* mean,
                          const float* rstd, int64_t N, int64_t C, NormType type) {
  const bool params = dw || db;
  if (params) std::fill_n(partial, n_parts * 2 * C, 0.0f);
#pragma omp parallel num_threads(n_parts)
  {
    float* pdw = params ? partial + omp_get_thread_num() * 2 * C : nullptr;
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n)
      norm_rows::backward(dx.at(n * C), pdw, pdw ? pdw + C : nullptr, dy + n * C, x + n * C, w,
                          mean[n], rstd[n], C, nullptr, type);
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

// The node of either norm; `op` names it in errors.
static Tensor normalize(const char* op, const Tensor& x, const Tensor& weight, const Tensor& bias,
                        float eps, NormType type) {
  QKV_CHECK(x.rank() >= 1 && x.shape().back() > 0,
            "{}: input of shape {} has no last dim to normalise over", op, x.shape());
  const int64_t C = x.shape().back(), N = x.numel() / C;
  QKV_CHECK(weight.defined(), "{}: weight is undefined", op);
  QKV_CHECK(weight.shape() == Shape{C}, "{}: input {} has {} features, so {} must be [{}]", op,
            x.shape(), C, describe("weight", weight), C);
  QKV_CHECK(!bias.defined() || bias.shape() == Shape{C},
            "{}: input {} has {} features, so {} must be [{}]", op, x.shape(), C,
            describe("bias", bias), C);

  Tensor y = Tensor::empty(x.shape()), mean = Tensor::empty({N}), rstd = Tensor::empty({N});
  norm_forward(y.data(), mean.data(), rstd.data(), x.data(), weight.data(),
               bias.defined() ? bias.data() : nullptr, N, C, eps, type);
  record(y, op, {x, weight, bias}, [x, weight, mean, rstd, N, C, type](const float* dy, GradOuts g) {
    float* dw = zero_if_fresh(g[1], C);
    float* db = zero_if_fresh(g[2], C);
    const int n_parts = omp_get_max_threads();
    Tensor partial;
    if (dw || db) partial = Tensor::empty({n_parts, 2 * C});
    norm_backward(g[0], dw, db, partial.defined() ? partial.data() : nullptr, n_parts, dy,
                  x.data(), weight.data(), mean.data(), rstd.data(), N, C, type);
  });
  return y;
}

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) {
  return normalize("layer_norm", x, weight, bias, eps, NormType::layernorm);
}

Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps) {
  return normalize("rms_norm", x, weight, Tensor(), eps, NormType::rmsnorm);
}

}  // namespace qkv
