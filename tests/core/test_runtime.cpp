#include <doctest/doctest.h>

#include <cblas.h>
#include <omp.h>

#include "qkv/runtime.h"

using namespace qkv;

TEST_CASE("runtime: a CPU with AVX2 or AVX-512 never runs OpenBLAS's generic fallback kernel") {
  __builtin_cpu_init();
  const bool modern = __builtin_cpu_supports("avx2") || __builtin_cpu_supports("avx512f");
  const Environment env = read_environment();
  if (!modern || blas_kernel_origin(env) == "from OPENBLAS_CORETYPE") return;  // the user's wins
  const std::string k = blas_kernel();
  CHECK_MESSAGE(k != "Prescott", runtime_summary(env));
  CHECK_MESSAGE(k != "Core2", runtime_summary(env));
  CHECK_MESSAGE(k != "Nehalem", runtime_summary(env));
}

TEST_CASE("runtime: how the kernel was chosen comes from the environment read at start-up") {
  CHECK(blas_kernel_origin({.openblas_coretype = "SkylakeX",
                            .blas_kernel_selected = "SkylakeX (OpenBLAS chose Prescott)"}) ==
        "selected by qkv: SkylakeX (OpenBLAS chose Prescott)");
  CHECK(blas_kernel_origin({.openblas_coretype = "Haswell"}) == "from OPENBLAS_CORETYPE");
  CHECK(blas_kernel_origin({}) == "chosen by OpenBLAS");
}

TEST_CASE("runtime: one call sets the OpenMP and OpenBLAS thread counts together") {
  const int before = num_threads();
  set_num_threads(1);
  CHECK(omp_get_max_threads() == 1);
  CHECK(openblas_get_num_threads() == 1);
  set_num_threads(2);
  CHECK(omp_get_max_threads() == 2);
  CHECK(openblas_get_num_threads() == 2);
  set_num_threads(before);
}

TEST_CASE("runtime: the summary names the kernel and the thread counts") {
  const std::string s = runtime_summary(read_environment());
  CHECK(s.find(blas_kernel()) != std::string::npos);
  CHECK(s.find("threads") != std::string::npos);
  CHECK(s.find("not the OpenMP build") == std::string::npos);
}
