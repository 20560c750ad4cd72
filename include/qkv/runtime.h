// Process-wide set-up: the OpenBLAS kernel, and one thread count shared by OpenMP and OpenBLAS.
#pragma once

#include <cstdint>
#include <string>

#include "qkv/environment.h"
#include "qkv/precision.h"

namespace qkv {

// Call first in main(). Debian's OpenBLAS does not recognise some current Xeons and falls back
// to a generic SSE3 kernel ("Prescott") that runs sgemm several times slower. When the user has
// not set OPENBLAS_CORETYPE and the CPU has AVX-512 (or AVX2), this re-executes the program once
// with OPENBLAS_CORETYPE=SkylakeX (or Haswell), since OpenBLAS reads it only when it loads.
// A user's own OPENBLAS_CORETYPE always wins. Returns normally when nothing needs doing.
void select_blas_kernel(char** argv);

// Sets the thread count for our OpenMP loops and for OpenBLAS together; n <= 0 means all cores.
void set_num_threads(int n);
int num_threads();

std::string blas_kernel();  // openblas_get_corename(), e.g. "SkylakeX"
// How that kernel was chosen (the environment read at start-up says), for the start-up log line.
std::string blas_kernel_origin(const Environment& env);
// One line for logs: kernel, how it was chosen, thread counts, cores.
std::string runtime_summary(const Environment& env);

// Best GFLOP/s of C[M,N] = A[M,K]·B[K,N] in `precision` over `reps` timed runs (after one
// warm-up), the way qkv runs its GEMMs: each thread one single-threaded GEMM on its block of rows.
// The peak MFU is measured against.
double measure_gemm_gflops(Precision precision, int64_t M, int64_t N, int64_t K, int reps = 5);

}  // namespace qkv
