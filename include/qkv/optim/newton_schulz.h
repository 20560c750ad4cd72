// Newton–Schulz orthogonalisation, Muon's core (Jordan et al., "Muon: An optimizer for hidden
// layers in neural networks", 2024): for G = U S V^T, an approximation of U V^T from matrix
// products alone, as bench/ref_optim.py's newton_schulz computes it.
#pragma once

#include <cstdint>

#include "qkv/precision.h"

namespace qkv::optim {

// The quintic's coefficients (a, b, c) in X <- a X + (b A + c A A) X, A = X X^T: the steepest
// slope at zero that still keeps every singular value of the result within about [0.7, 1.2]
// after five steps.
inline constexpr float kNewtonSchulzA = 3.4445f, kNewtonSchulzB = -4.7750f,
                       kNewtonSchulzC = 2.0315f;
inline constexpr int kNewtonSchulzSteps = 5;

// Floats of scratch that newton_schulz needs for a [rows, cols] matrix.
int64_t newton_schulz_scratch(int64_t rows, int64_t cols);

// out = five quintic steps from X0 = G / (|G|_F + 1e-7), run on the wide orientation (X is G^T
// when G has more rows than columns, so that A = X X^T is the smaller square). G, out:
// [rows, cols], row-major; they may be the same buffer. scratch: newton_schulz_scratch floats.
// In bf16 every intermediate is rounded to bfloat16 where PyTorch's bf16 tensors round it
// (each product's output, each elementwise result; the products sum in fp32), which needs
// AVX512_BF16 (precision.h). Runs on the calling thread alone; its bits do not depend on the
// thread count.
void newton_schulz(const float* G, float* out, int64_t rows, int64_t cols, Precision precision,
                   float* scratch);

}  // namespace qkv::optim
