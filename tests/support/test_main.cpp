// The doctest main shared by every test binary: the same OpenBLAS kernel selection and thread
// set-up as the qkv command, so the suite tests what users run.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "qkv/runtime.h"

int main(int argc, char** argv) {
  qkv::select_blas_kernel(argv);
  qkv::set_num_threads(0);
  doctest::Context context(argc, argv);
  return context.run();
}
