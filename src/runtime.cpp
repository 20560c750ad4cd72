// OpenBLAS kernel selection and thread settings.
#include "qkv/runtime.h"

#include <cblas.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <vector>

#include <fmt/format.h>


extern "C" char* openblas_get_corename(void);

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
  setenv(kReexecMarker, fmt::format("{} (qkv could not re-execute to select {})", core, best).c_str(),
         1);
}

void set_num_threads(int n) {
  if (n <= 0) n = omp_get_num_procs();
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int num_threads() { return omp_get_max_threads(); }

std::string blas_kernel() { return openblas_get_corename(); }

std::string blas_kernel_origin() {
  if (const char* m = std::getenv(kReexecMarker)) return fmt::format("selected by qkv: {}", m);
  if (std::getenv("OPENBLAS_CORETYPE")) return "from OPENBLAS_CORETYPE";
  return "chosen by OpenBLAS";
}

std::string runtime_summary() {
  const bool blas_openmp = openblas_get_parallel() == 2;
  return fmt::format("OpenBLAS kernel {} ({}); {} threads for OpenMP and {} for OpenBLAS{}; {} cores",
                     blas_kernel(), blas_kernel_origin(), omp_get_max_threads(),
                     openblas_get_num_threads(),
                     blas_openmp ? "" : " (WARNING: not the OpenMP build of OpenBLAS)",
                     omp_get_num_procs());
}

double measure_sgemm_gflops(int64_t M, int64_t N, int64_t K, int reps) {
  std::vector<float> a(M * K, 0.5f), b(K * N, 0.25f), c(M * N, 0.0f);
  std::vector<double> gflops;
  for (int r = 0; r <= reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a.data(), K, b.data(),
                N, 0.0f, c.data(), N);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r > 0) gflops.push_back(2.0 * M * N * K / s * 1e-9);
  }
  std::nth_element(gflops.begin(), gflops.begin() + gflops.size() / 2, gflops.end());
  return gflops[gflops.size() / 2];
}

}  // namespace qkv
