// embedding: a row gather from weight [V, C] in the forward, a scatter-add in the backward.
// P = number of ids (positions).
#include <algorithm>
#include <string>
#include <vector>

#include "ops/pointwise.h"
#include "qkv/error.h"
#include "qkv/ops.h"

namespace qkv {
namespace {

// y[p, :] = weight[ids[p], :].   y: [P, C]; weight: [V, C]; ids: [P], each in [0, V).
void embedding_forward(float* y, const float* weight, const int32_t* ids, int64_t P, int64_t C) {
  for_index(P, P * C >= kParallelMin,
            [=](int64_t p) { std::copy_n(weight + int64_t{ids[p]} * C, C, y + p * C); });
}

// dweight[ids[p], :] += dy[p, :].
// Repeated ids make rows collide, so threads split the columns, not the positions: each thread
// owns a block of columns and walks the positions in order. No races, and every element's sum
// has the same order for any thread count.
void embedding_backward(float* dweight, const float* dy, const int32_t* ids, int64_t P, int64_t C) {
  constexpr int64_t kBlock = 16;  // one cache line of floats per block
#pragma omp parallel for schedule(static) if (P * C >= kParallelMin)
  for (int64_t c0 = 0; c0 < C; c0 += kBlock) {
    const int64_t c1 = std::min(C, c0 + kBlock);
    for (int64_t p = 0; p < P; ++p) {
      float* dw = dweight + int64_t{ids[p]} * C;
      const float* g = dy + p * C;
      for (int64_t c = c0; c < c1; ++c) dw[c] += g[c];
    }
  }
}

}  // namespace

Tensor embedding(const Tensor& weight, std::span<const int32_t> ids, Shape ids_shape) {
  const std::string wname = weight.name().empty() ? "" : fmt::format(" '{}'", weight.name());
  QKV_CHECK(weight.rank() == 2, "embedding: weight{} {} must be [V, C]", wname, weight.shape());
  const int64_t P = static_cast<int64_t>(ids.size()), V = weight.shape()[0], C = weight.shape()[1];
  QKV_CHECK(ids_shape.numel() == P, "embedding: {} ids do not fill ids shape {}", P, ids_shape);
  QKV_CHECK(ids_shape.rank() < Shape::kMaxRank,
            "embedding: ids shape {} leaves no room for the channel dim (rank <= {})", ids_shape,
            Shape::kMaxRank - 1);
  for (int64_t p = 0; p < P; ++p)
    QKV_CHECK(ids[p] >= 0 && ids[p] < V,
              "embedding: id {} at position {} is out of range for weight{} {} (V = {})", ids[p], p,
              wname, weight.shape(), V);

  Shape out = ids_shape;
  out.push_back(C);
  Tensor y = Tensor::empty(out);
  embedding_forward(y.data(), weight.data(), ids.data(), P, C);
  if (needs_grad({weight})) {  // copying the ids is only worth it when a node will keep them
    record(y, "embedding", {weight},
           [n = weight.numel(), ids = std::vector<int32_t>(ids.begin(), ids.end()), C](
               const float* dy, GradOuts g) {
             if (float* dw = zero_if_fresh(g[0], n))
               embedding_backward(dw, dy, ids.data(), static_cast<int64_t>(ids.size()), C);
           });
  }
  return y;
}

}  // namespace qkv
