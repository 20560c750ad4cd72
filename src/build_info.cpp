// QKV_COMPILER, QKV_CPU_FLAGS and QKV_MPI_LIBRARY come from cmake/build_info.cmake; the revision
// from the header it regenerates at every build.
#include "qkv/build_info.h"

#include <fmt/format.h>
#include <oneapi/dnnl/dnnl.hpp>

#include "qkv/error.h"
#include "qkv/precision.h"
#include "qkv/runtime.h"
#include "qkv_git_revision.h"

extern "C" char* openblas_get_config(void);

namespace qkv {

BuildInfo build_info() {
  return {QKV_VERSION, QKV_GIT_REVISION, QKV_COMPILER, QKV_CPU_FLAGS, QKV_MPI_LIBRARY};
}

std::string version_text(const Environment& env) {
  const BuildInfo b = build_info();
  const dnnl_version_t* dnnl = dnnl_version();
  std::string bf16;
  try {
    const Bf16Support support = bf16_support(env);
    bf16 = fmt::format("{} ({})", support.usable ? "yes" : "no", support.why);
  } catch (const Error& e) {  // a QKV_CPU_BF16 value it refuses: --version still answers
    bf16 = fmt::format("no ({})", e.what());
  }
  return fmt::format(
      "qkv {} (git {})\n"
      "built with {}, {}, {}; oneDNN {}.{}.{} for bf16 GEMMs\n"
      "here: OpenBLAS kernel {} ({}); bf16 GEMMs: {}",
      b.version, b.git_revision, b.compiler, b.cpu_flags,
      b.mpi.empty() ? "without MPI (one process)" : "MPI: " + b.mpi, dnnl->major, dnnl->minor,
      dnnl->patch, blas_kernel(), openblas_get_config(), bf16);
}

}  // namespace qkv
