// gemm_small (src/ops/small_gemm.h), the attention heads' fp32 products, against BLAS (gemm_ld)
// at every transposition, with row counts that leave 1 to 3 rows after the blocks of 8 and 4,
// column counts that fill 1 to 4 vectors of 16 (and more than one block of 64), and strides
// wider than the matrices.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "ops/small_gemm.h"
#include "qkv/rng.h"

using namespace qkv;

TEST_CASE("gemm_small: matches BLAS at every transposition and every tail of rows and columns") {
  Rng rng(5);
  const auto random = [&](int64_t n) {
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = rng.normal();
    return v;
  };
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (float beta : {0.0f, 1.0f})
        for (int64_t M : {1, 3, 4, 6, 9, 15})
          for (int64_t N : {1, 15, 16, 17, 40, 64, 65, 130})
            for (int64_t K : {1, 16, 17, 40}) {
              CAPTURE(ta);
              CAPTURE(tb);
              CAPTURE(beta);
              CAPTURE(M);
              CAPTURE(N);
              CAPTURE(K);
              const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
              const std::vector<float> A = random((ta ? K : M) * lda), B = random((tb ? N : K) * ldb);
              std::vector<float> want = random(M * ldc), got = want, pack(K * N + 1, nan);
              // beta = 0: C is not read, as in BLAS, so a NaN there must not reach the result.
              if (beta == 0.0f)
                for (int64_t m = 0; m < M; ++m) got[m * ldc] = nan;
              gemm_ld(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, beta, want.data(), ldc);
              gemm_small(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, beta, got.data(), ldc,
                         pack.data());
              int bad = 0;
              for (int64_t m = 0; m < M; ++m)
                for (int64_t n = 0; n < ldc; ++n) {  // the columns past N must stay untouched
                  double mass = std::abs(beta * want[m * ldc + n]);  // Σ|α·a·b| + |β·c|
                  for (int64_t k = 0; n < N && k < K; ++k)
                    mass += 0.5 * std::abs(double(A[ta ? k * lda + m : m * lda + k]) *
                                           double(B[tb ? n * ldb + k : k * ldb + n]));
                  const double err = std::abs(double(got[m * ldc + n]) - double(want[m * ldc + n]));
                  bad += !(err <= 1e-5 * mass + 1e-6);
                }
              CHECK(bad == 0);
              CHECK(std::isnan(pack[K * N]));  // the transpose stays within its K·N floats
            }
}
