// Newton–Schulz orthogonalisation in fp32 or bf16, on the GEMMs of ops/gemm.h.
#include "qkv/optim/newton_schulz.h"

#include <algorithm>
#include <cmath>

#include "ops/bf16.h"
#include "ops/gemm.h"

namespace qkv::optim {

namespace {

// The steps over elements of type T (float, or bf16 rounded where PyTorch's bf16 tensors
// round). X: [n, m] with n <= m, read from G (transposed when G is tall) and written back.
// bench/ref_optim.py's loop body, `X = a * X + (b * A + c * A @ A) @ X`, parses as
// (b·A) + ((c·A) @ A): c scales A before the product, and each operator rounds its result.
template <class T>
void iterate(const float* G, float* out, int64_t rows, int64_t cols, float* scratch) {
  const bool tall = rows > cols;
  const int64_t n = tall ? cols : rows, m = tall ? rows : cols;
  T* X = reinterpret_cast<T*>(scratch);
  T* Y = X + n * m;
  T* A = Y + n * m;
  T* CA = A + n * n;
  T* AA = CA + n * n;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) (tall ? X[j * m + i] : X[i * m + j]) = T(G[i * cols + j]);

  // Frobenius norm summed in double: PyTorch's reduction order differs, its result by an ulp.
  double sq = 0;
  for (int64_t i = 0; i < n * m; ++i) sq += double(float(X[i])) * double(float(X[i]));
  const float norm = float(T(float(std::sqrt(sq))));
  const float denom = float(T(norm + 1e-7f));
  for (int64_t i = 0; i < n * m; ++i) X[i] = T(float(X[i]) / denom);

  for (int step = 0; step < kNewtonSchulzSteps; ++step) {
    gemm_ld(false, true, n, n, m, 1.0f, X, m, X, m, 0.0f, A, n);  // A = X X^T
    for (int64_t i = 0; i < n * n; ++i) CA[i] = T(kNewtonSchulzC * float(A[i]));
    gemm_ld(false, false, n, n, n, 1.0f, CA, n, A, n, 0.0f, AA, n);  // (c A) A
    for (int64_t i = 0; i < n * n; ++i)  // A becomes B = b A + c A A
      A[i] = T(float(T(kNewtonSchulzB * float(A[i]))) + float(AA[i]));
    gemm_ld(false, false, n, m, n, 1.0f, A, n, X, m, 0.0f, Y, m);  // B X
    for (int64_t i = 0; i < n * m; ++i)
      X[i] = T(float(T(kNewtonSchulzA * float(X[i]))) + float(Y[i]));
  }
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j)
      out[i * cols + j] = float(tall ? X[j * m + i] : X[i * m + j]);
}

}  // namespace

int64_t newton_schulz_scratch(int64_t rows, int64_t cols) {
  const int64_t n = std::min(rows, cols), m = std::max(rows, cols);
  return 2 * n * m + 3 * n * n;  // X, Y; A, c·A, (c·A)·A (as floats: bf16 uses half)
}

void newton_schulz(const float* G, float* out, int64_t rows, int64_t cols, Precision precision,
                   float* scratch) {
  if (precision == Precision::bf16)
    iterate<bf16>(G, out, rows, cols, scratch);
  else
    iterate<float>(G, out, rows, cols, scratch);
}

}  // namespace qkv::optim
