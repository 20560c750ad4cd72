// OpenBLAS kernel selection, thread settings and measured GEMM peaks.
#include "qkv/runtime.h"

#include <cblas.h>
#include <fmt/format.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <vector>

#include "ops/gemm.h"

namespace qkv {
namespace {

constexpr const char* kReexecMarker = "QKV_BLAS_KERNEL_SELECTED";

// Kernels OpenBLAS's DYNAMIC_ARCH falls back to when it does not know the CPU model.
bool is_generic_kernel(const std::string& core) {
  for (const char* k : {"Prescott", "Core2", "Nehalem", "Penryn", "Dunnington", "Katmai",
                        "Coppermine", "Northwood", "Banias", "Atom"})
    if (core == k) return true;
  return false;
}

const char* best_kernel_for_cpu() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
  return nullptr;
}

}  // namespace

void select_blas_kernel(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") || std::getenv(kReexecMarker)) return;
  const std::string core = blas_kernel();
  const char* best = best_kernel_for_cpu();
  if (!is_generic_kernel(core) || !best) return;
  setenv("OPENBLAS_CORETYPE", best, 1);
  setenv(kReexecMarker, fmt::format("{} (OpenBLAS chose {} for this CPU)", best, core).c_str(), 1);
  execv("/proc/self/exe", argv);
  // exec failed: carry on with the slow kernel rather than not at all.
  unsetenv("OPENBLAS_CORETYPE");
  setenv(kReexecMarker,
         fmt::format("{} (qkv could not re-execute to select {})", core, best).c_str(), 1);
}

void set_num_threads(int n) {
  if (n <= 0) n = omp_get_num_procs();
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int num_threads() { return omp_get_max_threads(); }

std::string blas_kernel() { return openblas_get_corename(); }

std::string blas_kernel_origin(const Environment& env) {
  if (!env.blas_kernel_selected.empty())
    return fmt::format("selected by qkv: {}", env.blas_kernel_selected);
  if (!env.openblas_coretype.empty()) return "from OPENBLAS_CORETYPE";
  return "chosen by OpenBLAS";
}

std::string runtime_summary(const Environment& env) {
  const bool blas_openmp = openblas_get_parallel() == 2;
  return fmt::format(
      "OpenBLAS kernel {} ({}); {} threads for OpenMP and {} for OpenBLAS{}; {} cores",
      blas_kernel(), blas_kernel_origin(env), omp_get_max_threads(), openblas_get_num_threads(),
      blas_openmp ? "" : " (WARNING: not the OpenMP build of OpenBLAS)", omp_get_num_procs());
}

double measure_gemm_gflops(Precision precision, int64_t M, int64_t N, int64_t K, int reps) {
  std::vector<float> a(M * K, 0.5f), b(K * N, 0.25f), c(M * N, 0.0f);
  std::vector<bf16> a16(precision == Precision::bf16 ? a.size() : 0);
  std::vector<bf16> b16(precision == Precision::bf16 ? b.size() : 0);
  convert(a16.data(), a.data(), int64_t(a16.size()));
  convert(b16.data(), b.data(), int64_t(b16.size()));
  double best = 0;
  for (int r = 0; r <= reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel
    {
      const auto [m0, m1] = block(M, omp_get_thread_num(), omp_get_num_threads());
      if (precision == Precision::bf16)
        gemm_ld(false, false, m1 - m0, N, K, 1.0f, a16.data() + m0 * K, K, b16.data(), N, 0.0f,
                c.data() + m0 * N, N);
      else
        gemm_ld(false, false, m1 - m0, N, K, 1.0f, a.data() + m0 * K, K, b.data(), N, 0.0f,
                c.data() + m0 * N, N);
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r > 0) best = std::max(best, 2.0 * M * N * K / s * 1e-9);
  }
  return best;
}

}  // namespace qkv
