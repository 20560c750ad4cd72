// Internal: fp32 products too small for a BLAS call to pay for itself: the attention heads', at
// head sizes of 32 to 64 and up to a few hundred keys, where OpenBLAS spent longer choosing a
// kernel and packing both operands than on the arithmetic (docs/kernels.md). A block of C (8
// rows × 32 columns, or 4 × 64) stays in AVX-512 registers across the whole inner dimension; A
// is read in place, transposed or not, and only a transposed B is copied first. Without AVX-512
// this is gemm_ld.
#pragma once

#include <cstdint>

#include "ops/gemm.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

namespace qkv {

#ifdef __AVX512F__
namespace small_gemm_detail {

// R rows × V vectors of 16 columns of C = alpha·a·B + beta·C, with a(r, k) = A[r·ars + k·acs],
// B's rows contiguous (ldb) and its last vector's columns masked by `last`.
template <int R, int V>
void tile(int64_t K, float alpha, const float* A, int64_t ars, int64_t acs, const float* B,
          int64_t ldb, float beta, float* C, int64_t ldc, __mmask16 last) {
  // Every loop over r and v unrolled whole, so that acc lives in registers (GCC keeps an array
  // it only partly unrolls on the stack, storing every accumulator at every k).
  __m512 acc[R][V];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    __m512 b[V];
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v)
      b[v] = _mm512_maskz_loadu_ps(v == V - 1 ? last : __mmask16(0xFFFF), B + k * ldb + 16 * v);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 a = _mm512_set1_ps(A[r * ars + k * acs]);
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) acc[r][v] = _mm512_fmadd_ps(a, b[v], acc[r][v]);
    }
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) {
      const __mmask16 m = v == V - 1 ? last : __mmask16(0xFFFF);
      float* c = C + r * ldc + 16 * v;
      __m512 x = _mm512_mul_ps(va, acc[r][v]);
      if (beta != 0.0f) x = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m, c), x);
      _mm512_mask_storeu_ps(c, m, x);
    }
}

// R rows of C by V (at most 2 for 8 rows: 16 accumulators at most).
template <int R>
void rows(int V, int64_t K, float alpha, const float* A, int64_t ars, int64_t acs, const float* B,
          int64_t ldb, float beta, float* C, int64_t ldc, __mmask16 last) {
  if (V == 1) return tile<R, 1>(K, alpha, A, ars, acs, B, ldb, beta, C, ldc, last);
  if (R > 4 || V == 2) return tile<R, 2>(K, alpha, A, ars, acs, B, ldb, beta, C, ldc, last);
  if constexpr (R <= 4) {
    if (V == 3) return tile<R, 3>(K, alpha, A, ars, acs, B, ldb, beta, C, ldc, last);
    tile<R, 4>(K, alpha, A, ars, acs, B, ldb, beta, C, ldc, last);
  }
}

// The 16 vectors r transposed in place: r[c][i] becomes r[i][c] (unpacks within 128-bit lanes,
// then lane shuffles). GCC 12 reports the intrinsics' own undefined operand as uninitialised
// (its bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
inline void transpose16(__m512 r[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  const auto lo = [](__m512 a, __m512 b) {
    return _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
  };
  const auto hi = [](__m512 a, __m512 b) {
    return _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
  };
  for (int i = 0; i < 16; i += 4) {  // u[i + j]: rows i..i+3 at columns j, j + 4, j + 8, j + 12
    u[i] = lo(t[i], t[i + 2]);
    u[i + 1] = hi(t[i], t[i + 2]);
    u[i + 2] = lo(t[i + 1], t[i + 3]);
    u[i + 3] = hi(t[i + 1], t[i + 3]);
  }
  for (int j = 0; j < 4; ++j) {
    const __m512 a = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88);   // columns j, j + 8
    const __m512 b = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88);
    const __m512 c = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xDD);   // columns j + 4, j + 12
    const __m512 e = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xDD);
    r[j] = _mm512_shuffle_f32x4(a, b, 0x88);
    r[j + 8] = _mm512_shuffle_f32x4(a, b, 0xDD);
    r[j + 4] = _mm512_shuffle_f32x4(c, e, 0x88);
    r[j + 12] = _mm512_shuffle_f32x4(c, e, 0xDD);
  }
}
#pragma GCC diagnostic pop

inline __mmask16 first(int64_t n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1); }

// to[k·N + n] = B[n·ldb + k] for n < N, k < K, in blocks of 16 × 16.
inline void transpose(float* to, const float* B, int64_t N, int64_t K, int64_t ldb) {
  for (int64_t n0 = 0; n0 < N; n0 += 16)
    for (int64_t k0 = 0; k0 < K; k0 += 16) {
      const int64_t rows = std::min<int64_t>(16, N - n0), cols = std::min<int64_t>(16, K - k0);
      __m512 r[16];
      for (int64_t i = 0; i < 16; ++i)
        r[i] = i < rows ? _mm512_maskz_loadu_ps(first(cols), B + (n0 + i) * ldb + k0)
                        : _mm512_setzero_ps();
      transpose16(r);
      for (int64_t c = 0; c < cols; ++c) _mm512_mask_storeu_ps(to + (k0 + c) * N + n0, first(rows), r[c]);
    }
}

}  // namespace small_gemm_detail
#endif

// gemm_ld's C = alpha·op(A)·op(B) + beta·C (without a bias), for small fp32 products; with tb,
// `pack` has room for K·N floats (B's transpose).
inline void gemm_small(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                       const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                       float* C, int64_t ldc, float* pack) {
#ifdef __AVX512F__
  namespace d = small_gemm_detail;
  if (tb) {
    d::transpose(pack, B, N, K, ldb);
    B = pack, ldb = N;
  }
  const int64_t ars = ta ? 1 : lda, acs = ta ? lda : 1;
  for (int64_t n0 = 0; n0 < N; n0 += 64) {
    const int64_t w = std::min<int64_t>(64, N - n0);
    const int V = static_cast<int>((w + 15) / 16);
    const __mmask16 last = __mmask16(0xFFFFu >> (16 * V - w));
    int64_t i = 0;
    if (V <= 2)
      for (; i + 8 <= M; i += 8)
        d::rows<8>(V, K, alpha, A + i * ars, ars, acs, B + n0, ldb, beta, C + i * ldc + n0, ldc,
                   last);
    for (; i + 4 <= M; i += 4)
      d::rows<4>(V, K, alpha, A + i * ars, ars, acs, B + n0, ldb, beta, C + i * ldc + n0, ldc,
                 last);
    const float* a = A + i * ars;
    float* c = C + i * ldc + n0;
    switch (M - i) {
      case 3: d::rows<3>(V, K, alpha, a, ars, acs, B + n0, ldb, beta, c, ldc, last); break;
      case 2: d::rows<2>(V, K, alpha, a, ars, acs, B + n0, ldb, beta, c, ldc, last); break;
      case 1: d::rows<1>(V, K, alpha, a, ars, acs, B + n0, ldb, beta, c, ldc, last); break;
      default: break;
    }
  }
#else
  (void)pack;
  gemm_ld(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

}  // namespace qkv
