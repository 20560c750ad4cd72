// Elementwise ops: binary arithmetic under NumPy broadcasting, scalar ops, pow and masked_fill.
// Every binary op runs through one broadcast walker (Broadcast + for_runs) that merges dims,
// so same-shape, one-element and [B,T,C] (op) [C] operands all reduce to contiguous inner runs.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/pointwise.h"
#include "qkv/error.h"
#include "qkv/ops.h"

namespace qkv {
namespace {

// Longest stretch of the innermost dim handled as one task, so that a flat same-shape op still
// splits into parallel work.
constexpr int64_t kRun = 4096;

// a and b broadcast to the output, with output dims of extent 1 dropped and neighbours merged
// when each operand is broadcast along both or along neither: same-shape becomes [N] with
// strides (1, 1), a one-element b becomes [N] with (1, 0), [B,T,C] + [C] becomes [B*T, C].
// After merging, an operand's stride along the innermost dim is 0 or 1.
struct Broadcast {
  int rank = 0;
  int64_t n[Shape::kMaxRank] = {};   // merged extents, outermost first
  int64_t sa[Shape::kMaxRank] = {};  // element strides of a; 0 along dims a is broadcast on
  int64_t sb[Shape::kMaxRank] = {};
  int64_t numel = 0;  // of the output
};

Shape broadcast_shape(const char* op, const Shape& a, const Shape& b) {
  const int r = std::max(a.rank(), b.rank());
  Shape out;
  for (int d = 0; d < r; ++d) {
    const int da = d - (r - a.rank()), db = d - (r - b.rank());
    const int64_t ea = da >= 0 ? a[da] : 1, eb = db >= 0 ? b[db] : 1;
    QKV_CHECK(ea == eb || ea == 1 || eb == 1, "{}: shapes {} and {} do not broadcast", op, a, b);
    out.push_back(ea == 1 ? eb : ea);
  }
  return out;
}

Broadcast make_broadcast(const Shape& a, const Shape& b, const Shape& out) {
  Broadcast bc;
  bool keep_a[Shape::kMaxRank], keep_b[Shape::kMaxRank];
  const int r = out.rank();
  for (int d = 0; d < r; ++d) {
    const int64_t n = out[d];
    if (n == 1) continue;
    const int da = d - (r - a.rank()), db = d - (r - b.rank());
    const bool ka = da >= 0 && a[da] == n, kb = db >= 0 && b[db] == n;
    const int last = bc.rank - 1;
    if (last >= 0 && keep_a[last] == ka && keep_b[last] == kb) {
      bc.n[last] *= n;
    } else {
      bc.n[bc.rank] = n, keep_a[bc.rank] = ka, keep_b[bc.rank] = kb;
      ++bc.rank;
    }
  }
  if (bc.rank == 0) bc.n[0] = 1, keep_a[0] = keep_b[0] = true, bc.rank = 1;
  int64_t step_a = 1, step_b = 1;
  for (int d = bc.rank - 1; d >= 0; --d) {
    bc.sa[d] = keep_a[d] ? step_a : 0;
    bc.sb[d] = keep_b[d] ? step_b : 0;
    if (keep_a[d]) step_a *= bc.n[d];
    if (keep_b[d]) step_b *= bc.n[d];
  }
  bc.numel = out.numel();
  return bc;
}

int64_t runs_per_row(const Broadcast& bc) { return (bc.n[bc.rank - 1] + kRun - 1) / kRun; }

int64_t num_runs(const Broadcast& bc) {
  const int64_t K = bc.n[bc.rank - 1];
  return bc.numel == 0 ? 0 : bc.numel / K * runs_per_row(bc);
}

// Calls f(i, ia, ib) for every output element i of runs [r0, r1), with ia and ib the matching
// elements of a and b. The inner loops are specialised on which operand moves, so they vectorise.
template <class F>
void for_runs(const Broadcast& bc, int64_t r0, int64_t r1, F f) {
  const int in = bc.rank - 1;
  const int64_t K = bc.n[in], per_row = runs_per_row(bc);
  const bool move_a = bc.sa[in] != 0, move_b = bc.sb[in] != 0;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t row = r / per_row, j0 = (r % per_row) * kRun, len = std::min(kRun, K - j0);
    int64_t ia = move_a ? j0 : 0, ib = move_b ? j0 : 0;
    for (int64_t d = in - 1, rest = row; d >= 0; --d) {
      const int64_t c = rest % bc.n[d];
      rest /= bc.n[d];
      ia += c * bc.sa[d], ib += c * bc.sb[d];
    }
    const int64_t i = row * K + j0;
    if (move_a && move_b) {
      for (int64_t j = 0; j < len; ++j) f(i + j, ia + j, ib + j);
    } else if (move_a) {
      for (int64_t j = 0; j < len; ++j) f(i + j, ia + j, ib);
    } else if (move_b) {
      for (int64_t j = 0; j < len; ++j) f(i + j, ia, ib + j);
    } else {
      for (int64_t j = 0; j < len; ++j) f(i + j, ia, ib);
    }
  }
}

// y = f(a, b) under broadcasting.   y: [bc.numel]; a, b: their own (broadcastable) shapes.
template <class F>
void binary_forward(float* y, const float* a, const float* b, const Broadcast& bc, F f) {
  const int64_t runs = num_runs(bc);
  for_index(runs, bc.numel >= kParallelMin, [=](int64_t r) {
    for_runs(bc, r, r + 1, [=](int64_t i, int64_t ia, int64_t ib) { y[i] = f(a[ia], b[ib]); });
  });
}

// dx += g(dy, a, b) summed over the dims that x (a, or b when kB) was broadcast along; nx is
// x's element count. An operand with the output's size gets a plain elementwise pass. A smaller
// one gets per-thread double partials over a static split of the runs, summed in thread order.
// Note: never reduction(+:) here; its combine order is unspecified, and DESIGN promises results
// that repeat exactly for a fixed thread count.
// A fresh grad (gx.overwrite) is written instead of added to.
template <bool kB, class G>
void binary_backward(GradOut gx, int64_t nx, const float* dy, const float* a, const float* b,
                     const Broadcast& bc, G g) {
  const int64_t runs = num_runs(bc);
  float* dx = gx.data;
  if (nx == bc.numel) {
    if (gx.overwrite) {
#pragma omp parallel for schedule(static) if (bc.numel >= kParallelMin)
      for (int64_t r = 0; r < runs; ++r)
        for_runs(bc, r, r + 1,
                 [=](int64_t i, int64_t ia, int64_t ib) { dx[i] = g(dy[i], a[ia], b[ib]); });
    } else {
#pragma omp parallel for schedule(static) if (bc.numel >= kParallelMin)
      for (int64_t r = 0; r < runs; ++r)
        for_runs(bc, r, r + 1,
                 [=](int64_t i, int64_t ia, int64_t ib) { dx[i] += g(dy[i], a[ia], b[ib]); });
    }
    return;
  }
  if (gx.overwrite) std::fill_n(dx, nx, 0.0f);
  const int teams = bc.numel >= kParallelMin ? omp_get_max_threads() : 1;
  std::vector<double> partial(static_cast<size_t>(teams) * static_cast<size_t>(nx), 0.0);
#pragma omp parallel num_threads(teams)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    double* acc = partial.data() + static_cast<int64_t>(t) * nx;
    for_runs(bc, runs * t / nt, runs * (t + 1) / nt, [=](int64_t i, int64_t ia, int64_t ib) {
      acc[kB ? ib : ia] += g(dy[i], a[ia], b[ib]);
    });
  }
  pointwise(nx, [&](int64_t i) {
    double s = 0;
    for (int t = 0; t < teams; ++t) s += partial[static_cast<size_t>(t * nx + i)];
    dx[i] += static_cast<float>(s);
  });
}

// The autograd wrapper shared by add/sub/mul/div: f is the forward, ga and gb map
// (dy, a, b) to the gradient contributions for a and b.
template <class F, class GA, class GB>
Tensor binary(const char* op, const Tensor& a, const Tensor& b, F f, GA ga, GB gb) {
  const Shape shape = broadcast_shape(op, a.shape(), b.shape());
  const Broadcast bc = make_broadcast(a.shape(), b.shape(), shape);
  Tensor y = Tensor::empty(shape);
  binary_forward(y.data(), a.data(), b.data(), bc, f);
  record(y, op, {a, b}, [a, b, bc, ga, gb](const float* dy, GradOuts g) {
    if (g[0]) binary_backward<false>(g[0], a.numel(), dy, a.data(), b.data(), bc, ga);
    if (g[1]) binary_backward<true>(g[1], b.numel(), dy, a.data(), b.data(), bc, gb);
  });
  return y;
}

// y = f(x) for f with slope k (neg, add_scalar, mul_scalar);   dx += k · dy
template <class F>
Tensor affine(const char* op, const Tensor& x, float k, F f) {
  Tensor y = Tensor::empty(x.shape());
  const float* px = x.data();
  float* py = y.data();
  pointwise(x.numel(), [=](int64_t i) { py[i] = f(px[i]); });
  record(y, op, {x}, [n = x.numel(), k](const float* dy, GradOuts g) {
    if (float* dx = zero_if_fresh(g[0], n)) pointwise(n, [=](int64_t i) { dx[i] += k * dy[i]; });
  });
  return y;
}

}  // namespace

// y = a + b;   da += dy, db += dy (each summed over its broadcast dims)
Tensor add(const Tensor& a, const Tensor& b) {
  return binary(
      "add", a, b, [](float x, float y) { return x + y; }, [](float g, float, float) { return g; },
      [](float g, float, float) { return g; });
}

// y = a - b;   da += dy, db -= dy
Tensor sub(const Tensor& a, const Tensor& b) {
  return binary(
      "sub", a, b, [](float x, float y) { return x - y; }, [](float g, float, float) { return g; },
      [](float g, float, float) { return -g; });
}

// y = a · b;   da += dy · b, db += dy · a
Tensor mul(const Tensor& a, const Tensor& b) {
  return binary(
      "mul", a, b, [](float x, float y) { return x * y; },
      [](float g, float, float y) { return g * y; }, [](float g, float x, float) { return g * x; });
}

// y = a / b;   da += dy / b, db -= dy · a / b²
Tensor div(const Tensor& a, const Tensor& b) {
  return binary(
      "div", a, b, [](float x, float y) { return x / y; },
      [](float g, float, float y) { return g / y; },
      [](float g, float x, float y) { return -g * x / (y * y); });
}

// y = -x, x + s, x · s;   dx -= dy, dx += dy, dx += s · dy
Tensor neg(const Tensor& x) { return affine("neg", x, -1.0f, [](float v) { return -v; }); }
Tensor add_scalar(const Tensor& x, float s) {
  return affine("add_scalar", x, 1.0f, [s](float v) { return v + s; });
}
Tensor mul_scalar(const Tensor& x, float s) {
  return affine("mul_scalar", x, s, [s](float v) { return v * s; });
}

// y = x^p;   dx += dy · p · x^(p-1), and 0 for p = 0 (PyTorch's convention; avoids 0·inf at x = 0)
Tensor pow(const Tensor& x, float p) {
  const float* px = x.data();
  const int64_t n = x.numel();
  if (p != std::trunc(p)) {
    const float* bad = std::find_if(px, px + n, [](float v) { return v < 0; });
    QKV_CHECK(bad == px + n,
              "pow: exponent {} is not an integer, so x must be non-negative; x of shape {} "
              "has {} at element {}",
              p, x.shape(), *bad, bad - px);
  }
  Tensor y = Tensor::empty(x.shape());
  float* py = y.data();
  pointwise(n, [=](int64_t i) { py[i] = std::pow(px[i], p); });
  record(y, "pow", {x}, [x, p](const float* dy, GradOuts g) {
    float* dx = zero_if_fresh(g[0], x.numel());
    if (!dx || p == 0) return;
    const float* px = x.data();
    pointwise(x.numel(), [=](int64_t i) { dx[i] += dy[i] * p * std::pow(px[i], p - 1); });
  });
  return y;
}

// y = value where mask != 0, else x;   dx += dy where mask == 0 (the mask gets no grad)
Tensor masked_fill(const Tensor& x, const Tensor& mask, float value) {
  QKV_CHECK(broadcast_shape("masked_fill", x.shape(), mask.shape()) == x.shape(),
            "masked_fill: mask of shape {} does not broadcast to x of shape {}", mask.shape(),
            x.shape());
  const Broadcast bc = make_broadcast(x.shape(), mask.shape(), x.shape());
  Tensor y = Tensor::empty(x.shape());
  binary_forward(y.data(), x.data(), mask.data(), bc,
                 [value](float v, float m) { return m != 0 ? value : v; });
  record(y, "masked_fill", {x}, [x, mask, bc](const float* dy, GradOuts g) {
    if (g[0])
      binary_backward<false>(g[0], x.numel(), dy, x.data(), mask.data(), bc,
                             [](float g, float, float m) { return m != 0 ? 0.0f : g; });
  });
  return y;
}

}  // namespace qkv
