#include <doctest/doctest.h>

#include <cblas.h>
#include <omp.h>

#include <cstdlib>

#include "qkv/error.h"
#include "qkv/runtime.h"

using namespace qkv;

TEST_CASE("runtime: a CPU with AVX2 or AVX-512 never runs OpenBLAS's generic fallback kernel") {
  __builtin_cpu_init();
  const bool modern = __builtin_cpu_supports("avx2") || __builtin_cpu_supports("avx512f");
  if (!modern || blas_kernel_origin() == "from OPENBLAS_CORETYPE") return;  // the user's choice wins
  const std::string k = blas_kernel();
  CHECK_MESSAGE(k != "Prescott", runtime_summary());
  CHECK_MESSAGE(k != "Core2", runtime_summary());
  CHECK_MESSAGE(k != "Nehalem", runtime_summary());
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
  const std::string s = runtime_summary();
  CHECK(s.find(blas_kernel()) != std::string::npos);
  CHECK(s.find("threads") != std::string::npos);
  CHECK(s.find("not the OpenMP build") == std::string::npos);
}

TEST_CASE("runtime: precision auto is bf16 exactly where the CPU has AVX512_BF16") {
  __builtin_cpu_init();
  const bool native = __builtin_cpu_supports("avx512bf16");
  CHECK(cpu_has_bf16() == native);
  const PrecisionChoice a = choose_precision(PrecisionSetting::automatic, "train.precision");
  CHECK(a.precision == (native ? Precision::bf16 : Precision::fp32));
  CHECK(a.why.find("train.precision = auto") != std::string::npos);
  CHECK(choose_precision(PrecisionSetting::fp32, "x").precision == Precision::fp32);
}

TEST_CASE("runtime: QKV_CPU_BF16=0 forces fp32, and an explicit bf16 is then one clear error") {
  setenv("QKV_CPU_BF16", "0", 1);
  CHECK_FALSE(cpu_has_bf16());
  const PrecisionChoice a = choose_precision(PrecisionSetting::automatic, "--precision");
  CHECK(a.precision == Precision::fp32);
  CHECK(a.why == "--precision = auto: this CPU has no AVX512_BF16");
  CHECK_THROWS_WITH_AS(choose_precision(PrecisionSetting::bf16, "train.precision"),
                       "train.precision = bf16 needs a CPU with AVX512_BF16, and this one has "
                       "none (QKV_CPU_BF16=0); use auto or fp32",
                       Error);
  unsetenv("QKV_CPU_BF16");
}
