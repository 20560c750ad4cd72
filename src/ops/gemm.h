// Internal GEMM helpers shared by the ops that split their products over the threads
// themselves (linear, the sublayers, the heads): each block is one single-threaded GEMM
// (OpenBLAS's OpenMP build, and oneDNN's, run serially inside a parallel region). At the small
// shapes of a char-level model, a library's own threading of one GEMM synchronises more and
// balances worse.
#pragma once

#include <cblas.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include "ops/bf16.h"

namespace qkv {

// C[M,N] = alpha·op(A)·op(B) + bias + beta·C, row-major with explicit leading dims (blocks of
// larger matrices). A is [M,K] (or [K,M] when ta), B is [K,N] (or [N,K] when tb); bias: [N],
// added to every row, or null.
inline void gemm_ld(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                    int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
                    const float* bias = nullptr) {
  if (M == 0 || N == 0) return;
  if (bias) {  // C = beta·C + bias first, then the product adds onto it
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n)
        C[m * ldc + n] = (beta == 0.0f ? 0.0f : beta * C[m * ldc + n]) + bias[n];
    beta = 1.0f;
  }
  if (K == 0) {  // an empty sum: C = beta·C, without trusting BLAS with K = 0
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) C[m * ldc + n] *= beta;
    return;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), alpha, A,
              static_cast<int>(std::max<int64_t>(1, lda)), B,
              static_cast<int>(std::max<int64_t>(1, ldb)), beta, C,
              static_cast<int>(std::max<int64_t>(1, ldc)));
}

// The same over bf16 operands, accumulating in fp32 (oneDNN, gemm_bf16.cpp), into fp32 C, or
// into bf16 C (Out = bf16: rounded once, at the end; beta must then be 0). The CPU must have
// AVX512_BF16 (precision.h: bf16_support).
template <class Out>
void gemm_ld(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A,
             int64_t lda, const bf16* B, int64_t ldb, float beta, Out* C, int64_t ldc,
             const float* bias = nullptr);

// [begin, end) of part t of n items split into `parts` nearly equal contiguous blocks.
inline std::pair<int64_t, int64_t> block(int64_t n, int t, int parts) {
  return {n * t / parts, n * (t + 1) / parts};
}

// Below this many multiply-adds a product runs on the calling thread alone: splitting it
// would cost more than it saves (OpenBLAS draws its own line at 4·65536).
constexpr int64_t kSplitMin = int64_t{1} << 18;

}  // namespace qkv
