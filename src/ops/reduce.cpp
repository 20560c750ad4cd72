// Reductions: sum and mean over everything or one dim, and max/argmax over the last dim.
// Sums accumulate in double in a fixed order, so they repeat exactly whatever the thread count.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/pointwise.h"
#include "qkv/error.h"
#include "qkv/ops.h"

namespace qkv {
namespace {

// Elements summed per task by sum_all; the blocks, not the threads, fix the summation order.
constexpr int64_t kSumBlock = 4096;
// Output columns accumulated together by sum_dim_forward (a stack buffer of doubles).
constexpr int64_t kCols = 256;

// Σ x[0..n) in double through kLanes interleaved partial sums, combined in lane order: a fixed
// order, like a serial sum, that vectorises instead of waiting on one chain of dependent adds.
constexpr int kLanes = 8;
double sum_contiguous(const float* x, int64_t n) {
  double lane[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int k = 0; k < kLanes; ++k) lane[k] += x[i + k];
  for (; i < n; ++i) lane[i % kLanes] += x[i];
  double s = 0;
  for (double l : lane) s += l;
  return s;
}

// Σ x in double: each block of kSumBlock elements by sum_contiguous, then the block sums in order.
double sum_all(const float* x, int64_t n) {
  const int64_t blocks = (n + kSumBlock - 1) / kSumBlock;
  std::vector<double> partial(static_cast<size_t>(blocks));
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t k = 0; k < blocks; ++k) {
    const int64_t i = k * kSumBlock;
    partial[static_cast<size_t>(k)] = sum_contiguous(x + i, std::min(kSumBlock, n - i));
  }
  double s = 0;
  for (double p : partial) s += p;
  return s;
}

// y = scale · Σ x.   x: [n], y: []
Tensor reduce_all(const char* op, const Tensor& x, double scale) {
  const int64_t n = x.numel();
  Tensor y = Tensor::empty(Shape{});
  y.data()[0] = static_cast<float>(scale * sum_all(x.data(), n));
  // dx += scale · dy
  record(y, op, {x}, [n, s = static_cast<float>(scale)](const float* dy, GradOuts g) {
    if (g[0]) accumulate(g[0], n, [v = s * dy[0]](int64_t) { return v; });
  });
  return y;
}

// y[o, i] = scale · Σ_d x[o, d, i].   x: [O, D, I], y: [O, I]. Each output is summed over d in
// order, in double; tasks own kCols outputs so that rows of x are read contiguously. With I = 1
// (a last-dim sum) each output is one contiguous run instead.
void sum_dim_forward(float* y, const float* x, int64_t O, int64_t D, int64_t I, double scale) {
  if (I == 1) {
#pragma omp parallel for schedule(static) if (O * D >= kParallelMin)
    for (int64_t o = 0; o < O; ++o) y[o] = static_cast<float>(scale * sum_contiguous(x + o * D, D));
    return;
  }
  const int64_t col_blocks = (I + kCols - 1) / kCols;
#pragma omp parallel for collapse(2) schedule(static) if (O * D * I >= kParallelMin)
  for (int64_t o = 0; o < O; ++o) {
    for (int64_t cb = 0; cb < col_blocks; ++cb) {
      const int64_t i0 = cb * kCols, len = std::min(kCols, I - i0);
      double acc[kCols] = {};
      for (int64_t d = 0; d < D; ++d) {
        const float* row = x + (o * D + d) * I + i0;
        for (int64_t j = 0; j < len; ++j) acc[j] += row[j];
      }
      for (int64_t j = 0; j < len; ++j) y[o * I + i0 + j] = static_cast<float>(scale * acc[j]);
    }
  }
}
// dx[o, d, i] += scale · dy[o, i]
void sum_dim_backward(float* dx, const float* dy, int64_t O, int64_t D, int64_t I, float scale) {
#pragma omp parallel for collapse(2) schedule(static) if (O * D * I >= kParallelMin)
  for (int64_t o = 0; o < O; ++o)
    for (int64_t d = 0; d < D; ++d) {
      float* row = dx + (o * D + d) * I;
      const float* g = dy + o * I;
      for (int64_t i = 0; i < I; ++i) row[i] += scale * g[i];
    }
}

Tensor reduce_dim(const char* op, const Tensor& x, int dim, bool keepdim, bool average) {
  const int r = x.rank();
  QKV_CHECK(dim >= -r && dim < r, "{}: dim {} is out of range for shape {}", op, dim, x.shape());
  const int d = dim < 0 ? dim + r : dim;
  const Shape& s = x.shape();
  QKV_CHECK(!average || s[d] > 0, "{}: dim {} of shape {} is empty", op, dim, s);
  int64_t O = 1, I = 1;
  for (int k = 0; k < d; ++k) O *= s[k];
  for (int k = d + 1; k < r; ++k) I *= s[k];
  const int64_t D = s[d];
  Shape out;
  for (int k = 0; k < r; ++k)
    if (k != d || keepdim) out.push_back(k == d ? 1 : s[k]);
  const double scale = average ? 1.0 / static_cast<double>(D) : 1.0;
  Tensor y = Tensor::empty(out);
  sum_dim_forward(y.data(), x.data(), O, D, I, scale);
  record(y, op, {x}, [O, D, I, sc = static_cast<float>(scale)](const float* dy, GradOuts g) {
    if (float* dx = zero_if_fresh(g[0], O * D * I)) sum_dim_backward(dx, dy, O, D, I, sc);
  });
  return y;
}

// y[n] = max_c x[n, c] and a[n] = its first index.   x: [N, C]. NaN counts as the largest value,
// as in PyTorch, so a diverged row shows up instead of being skipped.
void max_last_forward(float* y, float* a, const float* x, int64_t N, int64_t C) {
  for_index(N, N * C >= kParallelMin, [=](int64_t n) {
    const float* row = x + n * C;
    int64_t best = 0;
    for (int64_t c = 1; c < C && !std::isnan(row[best]); ++c)
      if (row[c] > row[best] || std::isnan(row[c])) best = c;
    if (y) y[n] = row[best];
    if (a) a[n] = static_cast<float>(best);
  });
}

Tensor max_last_impl(const char* op, const Tensor& x, bool want_index) {
  QKV_CHECK(x.rank() >= 1 && x.shape().back() > 0, "{}: needs a non-empty last dim, got shape {}",
            op, x.shape());
  const int64_t C = x.shape().back(), N = x.numel() / C;
  Shape out(x.shape().begin(), x.shape().end() - 1);
  Tensor y = Tensor::empty(out);
  max_last_forward(want_index ? nullptr : y.data(), want_index ? y.data() : nullptr, x.data(), N,
                   C);
  return y;
}

}  // namespace

Tensor sum(const Tensor& x) { return reduce_all("sum", x, 1.0); }

Tensor mean(const Tensor& x) {
  QKV_CHECK(x.numel() > 0, "mean: tensor of shape {} has no elements", x.shape());
  return reduce_all("mean", x, 1.0 / static_cast<double>(x.numel()));
}

Tensor sum(const Tensor& x, int dim, bool keepdim) {
  return reduce_dim("sum", x, dim, keepdim, false);
}

Tensor mean(const Tensor& x, int dim, bool keepdim) {
  return reduce_dim("mean", x, dim, keepdim, true);
}

Tensor max_last(const Tensor& x) { return max_last_impl("max_last", x, false); }
Tensor argmax_last(const Tensor& x) { return max_last_impl("argmax_last", x, true); }

}  // namespace qkv
