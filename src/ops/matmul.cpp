// Matrix products on cblas_sgemm: matmul (rank 2, batched rank 3/4, optionally a shared rank-2 b)
// and linear (x·Wᵀ + bias, PyTorch's [O, I] weight). Backward GEMMs run with beta = 1, adding
// straight into the grads (beta = 0 for a grad nothing has written yet).
#include <omp.h>

#include <algorithm>
#include <climits>

#include "ops/describe.h"
#include "ops/gemm.h"
#include "ops/pointwise.h"
#include "qkv/error.h"
#include "qkv/ops.h"

namespace qkv {
namespace {

// C[M,N] = op(A)[M,K] · op(B)[K,N] + beta · C, over whole contiguous matrices (gemm.h).
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, const float* B,
          float beta, float* C) {
  gemm_ld(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, beta, C, N);
}

// The GEMM geometry of one matmul: `batches` products, each C[M,N] = op(A)·op(B), with element
// strides between consecutive A, B and C (sb = 0 when b is shared by the batch).
struct Batched {
  bool ta, tb;
  int64_t batches, M, N, K, sa, sb, sc;
};

// C_i = op(A_i) · op(B_i) for every batch i.
void matmul_forward(float* C, const float* A, const float* B, const Batched& g) {
  for (int64_t i = 0; i < g.batches; ++i)
    gemm(g.ta, g.tb, g.M, g.N, g.K, A + i * g.sa, B + i * g.sb, 0.0f, C + i * g.sc);
}

// With C = op(A)·op(B):  d op(A) = dC·op(B)ᵀ,  d op(B) = op(A)ᵀ·dC; for a transposed operand
// the stored gradient is the transpose of that (dA = op(B)·dCᵀ when ta, dB = dCᵀ·op(A) when tb).
// A shared B has sb = 0, so its batches accumulate into the one dB in batch order.
void matmul_backward(float* dA, float* dB, const float* dC, const float* A, const float* B,
                     const Batched& g) {
  for (int64_t i = 0; i < g.batches; ++i) {
    const float* a = A + i * g.sa;
    const float* b = B + i * g.sb;
    const float* dc = dC + i * g.sc;
    if (dA) {
      float* da = dA + i * g.sa;
      if (g.ta)
        gemm(g.tb, true, g.K, g.M, g.N, b, dc, 1.0f, da);
      else
        gemm(false, !g.tb, g.M, g.K, g.N, dc, b, 1.0f, da);
    }
    if (dB) {
      float* db = dB + i * g.sb;
      if (g.tb)
        gemm(true, g.ta, g.N, g.K, g.M, dc, a, 1.0f, db);
      else
        gemm(!g.ta, false, g.K, g.N, g.M, a, dc, 1.0f, db);
    }
  }
}

// Linear's GEMMs are split over the threads by us (see ops/gemm.h). Blocks never share an
// output element and each is one GEMM, so results do not depend on the thread count.

// y[N,O] = x[N,I] · W[O,I]ᵀ + bias (or nothing), the operands of type T (float, or bf16).
// Threads take row blocks of y, or column blocks (output features) when there are too few rows
// to share.
template <class T>
void linear_forward(float* y, const T* x, const T* W, const float* bias, int64_t N, int64_t I,
                    int64_t O) {
  const int parts = N * O * I >= kSplitMin ? omp_get_max_threads() : 1;
  const bool by_rows = N >= 16 * parts;
  on_parts(parts, [=](int t, int n_parts) {
    const auto [b0, b1] = block(by_rows ? N : O, t, n_parts);
    const int64_t n0 = by_rows ? b0 : 0, n1 = by_rows ? b1 : N;
    const int64_t o0 = by_rows ? 0 : b0, o1 = by_rows ? O : b1;
    gemm_ld(false, true, n1 - n0, o1 - o0, I, 1.0f, x + n0 * I, I, W + o0 * I, I, 0.0f,
            y + n0 * O + o0, O, bias ? bias + o0 : nullptr);
  });
}

// dx[N,I] += dy·W;  dW[O,I] += dyᵀ·x;  db[O] += Σ_n dy[n, :]  (fresh grads are written).
// dx and dW cost the same N·I·O multiply-adds. With an even thread count and both wanted, half
// the threads share dx by row blocks and the other half share dW by blocks of output features
// (larger GEMMs than splitting both, which is faster: docs/kernels.md); otherwise
// every thread takes a block of each. db goes with dW's feature blocks, each summing its rows
// in order, so no two threads add into one element. When x is also the weight or the bias (one
// grad in two roles, which the engine hands out as added to), all of dx is added before dW and
// db add to it, so no two threads add into one element. dy_t: dy as an operand of type T.
template <class T>
void linear_backward(GradOut dx, GradOut dW, float* db, const float* dy, const T* dy_t, const T* x,
                     const T* W, int64_t N, int64_t I, int64_t O) {
  const bool aliased = dx && (dx.data == dW.data || dx.data == db);
  const int parts = N * O * I >= kSplitMin ? omp_get_max_threads() : 1;
  const bool halves = dx && (dW || db) && parts % 2 == 0 && !aliased;
#pragma omp parallel num_threads(parts) if (parts > 1)
  {
    const int t = omp_get_thread_num();
    // This thread's share: block dx_part of dx_parts, and block w_part of w_parts of dW and db.
    int dx_part = t, dx_parts = parts, w_part = t, w_parts = parts;
    if (halves) {
      dx_parts = w_parts = parts / 2;
      dx_part = t < parts / 2 ? t : -1;
      w_part = t < parts / 2 ? -1 : t - parts / 2;
    }
    if (dx && dx_part >= 0) {
      const auto [r0, r1] = block(N, dx_part, dx_parts);
      gemm_ld(false, false, r1 - r0, I, O, 1.0f, dy_t + r0 * O, O, W, I, dx.beta(),
              dx.data + r0 * I, I);
    }
    if (aliased) {
#pragma omp barrier
    }
    if (w_part >= 0) {
      const auto [o0, o1] = block(O, w_part, w_parts);
      if (dW)
        gemm_ld(true, false, o1 - o0, I, N, 1.0f, dy_t + o0, O, x, I, dW.beta(), dW.data + o0 * I,
                I);
      if (db)
        for (int64_t n = 0; n < N; ++n)
          for (int64_t c = o0; c < o1; ++c) db[c] += dy[n * O + c];
    }
  }
}

// n floats rounded to bf16, in parallel blocks when there are many.
Tensor rounded(const float* from, int64_t n) {
  Tensor t = empty_of<bf16>(n);
  bf16* to = data_of<bf16>(t);
  constexpr int64_t kBlock = 4096;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  for_index(blocks, blocks >= 16, [=](int64_t i) {
    convert(to + i * kBlock, from + i * kBlock, std::min(kBlock, n - i * kBlock));
  });
  return t;
}

void check_blas_size(const char* op, int64_t M, int64_t N, int64_t K) {
  QKV_CHECK(std::max({M, N, K}) <= INT_MAX,
            "{}: a GEMM of {}x{}x{} exceeds the BLAS index range ({})", op, M, N, K, INT_MAX);
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  const int ra = a.rank(), rb = b.rank();
  QKV_CHECK(ra >= 2 && rb >= 2, "matmul: needs rank 2, 3 or 4 operands, got {} and {}",
            describe("a", a), describe("b", b));
  QKV_CHECK(rb == 2 || rb == ra,
            "matmul: {} must have the rank of {} or be rank 2 (shared by the batch)",
            describe("b", b), describe("a", a));
  const Shape& sa = a.shape();
  const Shape& sb = b.shape();
  for (int d = 0; d < rb - 2; ++d)
    QKV_CHECK(sa[d] == sb[d], "matmul: batch dims of {} and {} differ", describe("a", a),
              describe("b", b));
  const int64_t M = trans_a ? sa[ra - 1] : sa[ra - 2], Ka = trans_a ? sa[ra - 2] : sa[ra - 1];
  const int64_t N = trans_b ? sb[rb - 2] : sb[rb - 1], Kb = trans_b ? sb[rb - 1] : sb[rb - 2];
  QKV_CHECK(Ka == Kb,
            "matmul: inner dims differ: {} (trans_a={}) gives K={}, {} (trans_b={}) gives K={}",
            describe("a", a), trans_a, Ka, describe("b", b), trans_b, Kb);
  int64_t batches = 1;
  for (int d = 0; d < ra - 2; ++d) batches *= sa[d];
  const bool shared = rb == 2 && ra > 2;
  Batched g{trans_a, trans_b, batches, M, N, Ka, M * Ka, shared ? 0 : Ka * N, M * N};
  // A shared b with an untransposed a is one GEMM over a viewed as [batch*M, K]; the same view
  // makes dB a single GEMM that sums over the batch inside BLAS.
  if (shared && !trans_a) g = {false, trans_b, 1, batches * M, N, Ka, 0, 0, 0};
  check_blas_size("matmul", g.M, g.N, g.K);

  Shape out;
  for (int d = 0; d < ra - 2; ++d) out.push_back(sa[d]);
  out.push_back(M);
  out.push_back(N);
  Tensor y = Tensor::empty(out);
  matmul_forward(y.data(), a.data(), b.data(), g);
  record(y, "matmul", {a, b}, [a, b, g](const float* dy, GradOuts grads) {
    matmul_backward(zero_if_fresh(grads[0], a.numel()), zero_if_fresh(grads[1], b.numel()), dy,
                    a.data(), b.data(), g);
  });
  return y;
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, Precision precision) {
  QKV_CHECK(weight.rank() == 2, "linear: {} must be [out, in]", describe("weight", weight));
  QKV_CHECK(x.rank() >= 1, "linear: {} has no feature dim", describe("input", x));
  const int64_t O = weight.shape()[0], I = weight.shape()[1];
  QKV_CHECK(x.shape().back() == I, "linear: input {} has {} features, {} expects {}", x.shape(),
            x.shape().back(), describe("weight", weight), I);
  if (bias.defined())
    QKV_CHECK(bias.rank() == 1 && bias.numel() == O, "linear: {} does not match {}: expected [{}]",
              describe("bias", bias), describe("weight", weight), O);
  int64_t N = 1;
  for (int d = 0; d < x.rank() - 1; ++d) N *= x.shape()[d];
  check_blas_size("linear", N, O, I);

  Shape out = x.shape();
  out[out.rank() - 1] = O;
  Tensor y = Tensor::empty(out);
  const float* b = bias.defined() ? bias.data() : nullptr;
  if (precision == Precision::fp32) {
    linear_forward(y.data(), x.data(), weight.data(), b, N, I, O);
    record(y, "linear", {x, weight, bias}, [x, weight, N, I, O](const float* dy, GradOuts g) {
      linear_backward(g[0], g[1], zero_if_fresh(g[2], O), dy, dy, x.data(), weight.data(), N, I, O);
    });
    return y;
  }
  // bf16: x rounded once, kept for dW; dy rounded once for dx and dW.
  const Tensor x_t = rounded(x.data(), N * I);
  linear_forward(y.data(), data_of<bf16>(x_t), bf16_copy(weight), b, N, I, O);
  record(y, "linear", {x, weight, bias}, [x_t, weight, N, I, O](const float* dy, GradOuts g) {
    const Tensor dy_t = rounded(dy, N * O);
    linear_backward(g[0], g[1], zero_if_fresh(g[2], O), dy, data_of<bf16>(dy_t), data_of<bf16>(x_t),
                    bf16_copy(weight), N, I, O);
  });
  return y;
}

}  // namespace qkv
