// softmax_cross_entropy, fused: logits [N, V] -> mean loss []. Only the per-row log-sum-exp
// [N] is saved; the backward recomputes the softmax from it instead of keeping [N, V] probs.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "ops/pointwise.h"
#include "ops/vecmath.h"
#include "qkv/error.h"
#include "qkv/ops.h"

namespace qkv {

// lse[n] = max + log Σ_v exp(logits[n, v] - max);  row_loss[n] = lse[n] - logits[n, target[n]].
// Ignored rows get lse = 0 and loss 0. Returns Σ row_loss, summed in row order in double so the
// loss is the same for any thread count.
// logits: [N, V]; targets: [N]; lse: [N] (saved for the backward); row_loss: [N] (scratch).
static double cross_entropy_forward(float* lse, double* row_loss, const float* logits,
                                    const int32_t* targets, int32_t ignore_index, int64_t N,
                                    int64_t V) {
#pragma omp parallel for schedule(static) if (N * V >= kParallelMin)
  for (int64_t n = 0; n < N; ++n) {
    if (targets[n] == ignore_index) {
      lse[n] = 0.0f;
      row_loss[n] = 0.0;
      continue;
    }
    const float* lr = logits + n * V;
    const float mx = vecmath::lane_max(lr, V);
    lse[n] = mx + std::log(vecmath::lane_sum_exp(lr, V, mx));
    row_loss[n] = static_cast<double>(lse[n]) - static_cast<double>(lr[targets[n]]);
  }
  double total = 0.0;
  for (int64_t n = 0; n < N; ++n) total += row_loss[n];
  return total;
}

// dlogits[n, v] += (exp(logits[n, v] - lse[n]) - [v == target[n]]) * dloss / n_valid;
// ignored rows get nothing. A fresh grad is written instead, every row of it.
// dlogits, logits: [N, V]; targets, lse: [N].
static void cross_entropy_backward(GradOut dlogits, float dloss, const float* logits,
                                   const float* lse, const int32_t* targets, int32_t ignore_index,
                                   int64_t n_valid, int64_t N, int64_t V) {
  const float scale = dloss / static_cast<float>(n_valid);
#pragma omp parallel for schedule(static) if (N * V >= kParallelMin)
  for (int64_t n = 0; n < N; ++n) {
    float* dr = dlogits.data + n * V;
    if (targets[n] == ignore_index) {
      if (dlogits.overwrite) std::fill_n(dr, V, 0.0f);
      continue;
    }
    const float* lr = logits + n * V;
    const float l = lse[n];
    if (dlogits.overwrite)
      for (int64_t v = 0; v < V; ++v) dr[v] = vecmath::exp(lr[v] - l) * scale;
    else
      for (int64_t v = 0; v < V; ++v) dr[v] += vecmath::exp(lr[v] - l) * scale;
    dr[targets[n]] -= scale;
  }
}

Tensor softmax_cross_entropy(const Tensor& logits, std::span<const int32_t> targets,
                             int32_t ignore_index) {
  QKV_CHECK((logits.rank() == 2 || logits.rank() == 3) && logits.shape().back() > 0,
            "softmax_cross_entropy: logits must be [N, V] or [B, T, V] with V > 0, got {}",
            logits.shape());
  const int64_t V = logits.shape().back(), N = logits.numel() / V;
  QKV_CHECK(static_cast<int64_t>(targets.size()) == N,
            "softmax_cross_entropy: logits {} have {} rows but there are {} targets",
            logits.shape(), N, targets.size());
  int64_t n_valid = 0;
  for (int64_t n = 0; n < N; ++n) {
    const int32_t t = targets[n];
    if (t == ignore_index) continue;
    QKV_CHECK(t >= 0 && t < V,
              "softmax_cross_entropy: target {} at position {} is outside [0, {}) and is not "
              "ignore_index ({})",
              t, n, V, ignore_index);
    ++n_valid;
  }
  QKV_CHECK(n_valid > 0,
            "softmax_cross_entropy: all {} targets are ignore_index ({}); the mean is undefined", N,
            ignore_index);

  Tensor lse = Tensor::empty({N});
  std::vector<double> row_loss(static_cast<size_t>(N));
  const double total = cross_entropy_forward(lse.data(), row_loss.data(), logits.data(),
                                             targets.data(), ignore_index, N, V);
  Tensor loss = Tensor::empty({});
  loss.data()[0] = static_cast<float>(total / static_cast<double>(n_valid));
  record(loss, "softmax_cross_entropy", {logits},
         [logits, lse, ids = std::vector<int32_t>(targets.begin(), targets.end()), ignore_index,
          n_valid, N, V](const float* dloss, GradOuts g) {
           if (g[0])
             cross_entropy_backward(g[0], dloss[0], logits.data(), lse.data(), ids.data(),
                                    ignore_index, n_valid, N, V);
         });
  return loss;
}

}  // namespace qkv
