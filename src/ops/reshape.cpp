// Shape and layout ops. reshape/view share storage; transpose, permute, narrow, concat and split
// copy into a new contiguous tensor. Slab kernels see a tensor as [outer, D, inner] around `dim`.
#include <algorithm>
#include <array>
#include <cstring>
#include <string>
#include <vector>

#include <fmt/ranges.h>

#include "ops/pointwise.h"
#include "qkv/error.h"
#include "qkv/ops.h"

namespace qkv {
namespace {

int wrap_dim(const char* op, int dim, const Shape& s) {
  const int r = s.rank();
  QKV_CHECK(dim >= -r && dim < r, "{}: dim {} is out of range for shape {}", op, dim, s);
  return dim < 0 ? dim + r : dim;
}

int64_t outer_size(const Shape& s, int dim) {
  int64_t n = 1;
  for (int d = 0; d < dim; ++d) n *= s[d];
  return n;
}

int64_t inner_size(const Shape& s, int dim) {
  int64_t n = 1;
  for (int d = dim + 1; d < s.rank(); ++d) n *= s[d];
  return n;
}

// dst[o, dst_start + j, i] = src[o, src_start + j, i] for j < len (or += when kAccumulate).
// dst: [outer, dst_d, inner]; src: [outer, src_d, inner]. Narrow, concat and split are all this
// copy, forward one way and backward the other.
template <bool kAccumulate>
void copy_slab(float* dst, int64_t dst_d, int64_t dst_start, const float* src, int64_t src_d,
               int64_t src_start, int64_t outer, int64_t len, int64_t inner) {
  const int64_t block = len * inner;
  for_index(outer, outer * block >= kParallelMin, [=](int64_t o) {
    float* d = dst + (o * dst_d + dst_start) * inner;
    const float* s = src + (o * src_d + src_start) * inner;
    if constexpr (kAccumulate) {
      for (int64_t i = 0; i < block; ++i) d[i] += s[i];
    } else {
      std::memcpy(d, s, sizeof(float) * static_cast<size_t>(block));
    }
  });
}

using Dims4 = std::array<int64_t, 4>;

// y[i0, i1, i2, i3] = x[Σ_k i_k · xstride[k]].   y: ys (contiguous); xstride[k] is x's stride
// along the dim that becomes y's dim k. kBackward: dx[Σ_k i_k · xstride[k]] += dy[i0, i1, i2, i3],
// the same index map scattered; a permutation is a bijection, so no two threads write the same
// element of dx.
template <bool kBackward>
void permute_copy(float* to, const float* from, const Dims4& ys, const Dims4& xstride) {
#pragma omp parallel for collapse(2) schedule(static) if (ys[0] * ys[1] * ys[2] * ys[3] >= \
                                                            kParallelMin)
  for (int64_t i0 = 0; i0 < ys[0]; ++i0)
    for (int64_t i1 = 0; i1 < ys[1]; ++i1) {
      int64_t y = (i0 * ys[1] + i1) * ys[2] * ys[3];
      const int64_t x0 = i0 * xstride[0] + i1 * xstride[1];
      for (int64_t i2 = 0; i2 < ys[2]; ++i2)
        for (int64_t i3 = 0; i3 < ys[3]; ++i3, ++y) {
          const int64_t x = x0 + i2 * xstride[2] + i3 * xstride[3];
          if constexpr (kBackward)
            to[x] += from[y];
          else
            to[y] = from[x];
        }
    }
}

Tensor share_storage(const Tensor& x, Shape shape) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = x.impl()->storage;
  impl->offset = x.impl()->offset;
  impl->shape = shape;
  return Tensor(std::move(impl));
}

Tensor reshape_impl(const char* op, const Tensor& x, Shape shape) {
  QKV_CHECK(shape.numel() == x.numel(), "{}: cannot view {} ({} elements) as {} ({} elements)", op,
            x.shape(), x.numel(), shape, shape.numel());
  Tensor y = share_storage(x, shape);
  record(y, op, {x}, [n = x.numel()](const float* dy, GradOuts g) {
    // dx = dy: the same elements in the same order, only the shape differs.
    if (g[0]) accumulate(g[0], n, [=](int64_t i) { return dy[i]; });
  });
  return y;
}

// Resolves a single -1 extent from x's element count.
Shape infer_shape(const char* op, const Tensor& x, std::initializer_list<int64_t> dims) {
  const std::string asked = fmt::format("[{}]", fmt::join(dims, ", "));
  int64_t known = 1;
  int inferred = -1, d = 0;
  for (int64_t e : dims) {
    QKV_CHECK(e >= -1, "{}: bad extent {} in {}", op, e, asked);
    if (e == -1) {
      QKV_CHECK(inferred < 0, "{}: more than one -1 in {}", op, asked);
      inferred = d;
    } else {
      known *= e;
    }
    ++d;
  }
  QKV_CHECK(static_cast<int>(dims.size()) <= Shape::kMaxRank, "{}: {} has more than {} dims", op,
            asked, Shape::kMaxRank);
  Shape shape;
  for (int64_t e : dims) shape.push_back(e < 0 ? 0 : e);
  if (inferred >= 0) {
    QKV_CHECK(known > 0 && x.numel() % known == 0,
              "{}: cannot view {} ({} elements) as {}: {} is not a multiple of {}", op, x.shape(),
              x.numel(), asked, x.numel(), known);
    shape[inferred] = x.numel() / known;
  }
  return shape;
}

// Pads x to rank 4 with leading 1s so one kernel serves every rank; perm[k] is the dim of x
// that becomes dim k of the result.
Tensor permute_impl(const char* op, const Tensor& x, const int perm[4]) {
  const int r = x.rank(), pad = Shape::kMaxRank - r;
  Dims4 xs, xstride, ys, ystride;
  for (int k = 0; k < 4; ++k) xs[k] = k < pad ? 1 : x.shape()[k - pad];
  xstride[3] = 1;
  for (int k = 2; k >= 0; --k) xstride[k] = xstride[k + 1] * xs[k + 1];
  Shape out;
  for (int k = 0; k < 4; ++k) {
    const int src = k < pad ? k : perm[k - pad] + pad;
    ys[k] = xs[src];
    ystride[k] = xstride[src];
    if (k >= pad) out.push_back(ys[k]);
  }
  Tensor y = Tensor::empty(out);
  permute_copy<false>(y.data(), x.data(), ys, ystride);
  record(y, op, {x}, [n = x.numel(), ys, ystride](const float* dy, GradOuts g) {
    if (float* dx = zero_if_fresh(g[0], n)) permute_copy<true>(dx, dy, ys, ystride);
  });
  return y;
}

Tensor narrow_impl(const char* op, const Tensor& x, int dim, int64_t start, int64_t length) {
  const Shape& s = x.shape();
  const int64_t outer = outer_size(s, dim), d = s[dim], inner = inner_size(s, dim);
  Shape out = s;
  out[dim] = length;
  Tensor y = Tensor::empty(out);
  copy_slab<false>(y.data(), length, 0, x.data(), d, start, outer, length, inner);
  record(y, op, {x}, [n = x.numel(), outer, d, start, length, inner](const float* dy, GradOuts g) {
    // dx[.., start + j, ..] += dy[.., j, ..]; the rest of dx gets nothing.
    if (float* dx = zero_if_fresh(g[0], n))
      copy_slab<true>(dx, d, start, dy, length, 0, outer, length, inner);
  });
  return y;
}

}  // namespace

Tensor reshape(const Tensor& x, Shape shape) { return reshape_impl("reshape", x, shape); }
Tensor view(const Tensor& x, Shape shape) { return reshape_impl("view", x, shape); }

Tensor reshape(const Tensor& x, std::initializer_list<int64_t> dims) {
  return reshape_impl("reshape", x, infer_shape("reshape", x, dims));
}
Tensor view(const Tensor& x, std::initializer_list<int64_t> dims) {
  return reshape_impl("view", x, infer_shape("view", x, dims));
}

Tensor transpose(const Tensor& x, int dim0, int dim1) {
  const int d0 = wrap_dim("transpose", dim0, x.shape()),
            d1 = wrap_dim("transpose", dim1, x.shape());
  int perm[4] = {0, 1, 2, 3};
  std::swap(perm[d0], perm[d1]);
  return permute_impl("transpose", x, perm);
}

Tensor permute(const Tensor& x, std::span<const int> dims) {
  const int r = x.rank();
  QKV_CHECK(static_cast<int>(dims.size()) == r, "permute: {} dims ({}) for shape {} of rank {}",
            dims.size(), fmt::join(dims, ", "), x.shape(), r);
  int perm[4] = {0, 1, 2, 3};
  bool seen[4] = {};
  for (int k = 0; k < r; ++k) {
    perm[k] = wrap_dim("permute", dims[k], x.shape());
    QKV_CHECK(!seen[perm[k]], "permute: dims ({}) are not a permutation of the {} dims of {}",
              fmt::join(dims, ", "), r, x.shape());
    seen[perm[k]] = true;
  }
  return permute_impl("permute", x, perm);
}

Tensor narrow(const Tensor& x, int dim, int64_t start, int64_t length) {
  const int d = wrap_dim("narrow", dim, x.shape());
  QKV_CHECK(start >= 0 && length >= 0 && start + length <= x.shape()[d],
            "narrow: [{}, {}) is outside dim {} of shape {}", start, start + length, dim,
            x.shape());
  return narrow_impl("narrow", x, d, start, length);
}

Tensor concat(const std::vector<Tensor>& xs, int dim) {
  QKV_CHECK(!xs.empty(), "concat: no tensors to concatenate");
  for (size_t n = 0; n < xs.size(); ++n)
    QKV_CHECK(xs[n].defined(), "concat: input {} is an undefined tensor", n);
  const Shape& s0 = xs[0].shape();
  const int d = wrap_dim("concat", dim, s0);
  Shape out = s0;
  out[d] = 0;
  for (size_t n = 0; n < xs.size(); ++n) {
    const Shape& s = xs[n].shape();
    bool same = s.rank() == s0.rank();
    for (int k = 0; same && k < s.rank(); ++k) same = k == d || s[k] == s0[k];
    QKV_CHECK(same,
              "concat: input {} has shape {} and input 0 has {}; they must match except in "
              "dim {}",
              n, s, s0, dim);
    out[d] += s[d];
  }
  const int64_t outer = outer_size(s0, d), inner = inner_size(s0, d), total = out[d];
  Tensor y = Tensor::empty(out);
  for (int64_t n = 0, start = 0; n < static_cast<int64_t>(xs.size()); start += xs[n++].shape()[d])
    copy_slab<false>(y.data(), total, start, xs[n].data(), xs[n].shape()[d], 0, outer,
                     xs[n].shape()[d], inner);
  record(y, "concat", xs, [xs, d, outer, inner, total](const float* dy, GradOuts g) {
    // dxs[n] += dy[.., start_n : start_n + D_n, ..]
    int64_t start = 0;
    for (size_t n = 0; n < xs.size(); ++n) {
      const int64_t len = xs[n].shape()[d];
      if (float* dx = zero_if_fresh(g[n], xs[n].numel()))
        copy_slab<true>(dx, len, 0, dy, total, start, outer, len, inner);
      start += len;
    }
  });
  return y;
}

std::vector<Tensor> split(const Tensor& x, std::span<const int64_t> sizes, int dim) {
  const int d = wrap_dim("split", dim, x.shape());
  int64_t total = 0;
  bool non_negative = true;
  for (int64_t n : sizes) {
    non_negative = non_negative && n >= 0;
    total += n;
  }
  QKV_CHECK(non_negative && total == x.shape()[d],
            "split: sizes ({}) must be non-negative and sum to {}, dim {} of shape {}",
            fmt::join(sizes, ", "), x.shape()[d], dim, x.shape());
  std::vector<Tensor> parts;
  parts.reserve(sizes.size());
  int64_t start = 0;
  for (int64_t n : sizes) {
    parts.push_back(narrow_impl("split", x, d, start, n));
    start += n;
  }
  return parts;
}

}  // namespace qkv
