// The doctest main shared by every test binary: the same OpenBLAS kernel selection and thread
// set-up as the qkv command, so the suite tests what users run.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <spdlog/spdlog.h>

#include "qkv/runtime.h"

int main(int argc, char** argv) {
  qkv::select_blas_kernel(argv);
  qkv::set_num_threads(0);
  spdlog::set_level(spdlog::level::warn);  // training progress would bury the test report
  doctest::Context context(argc, argv);
  return context.run();
}
