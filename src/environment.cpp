#include "qkv/environment.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

namespace qkv {
namespace {

std::string variable(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

}  // namespace

Environment read_environment() {
  Environment e{.openblas_coretype = variable("OPENBLAS_CORETYPE"),
                .blas_kernel_selected = variable("QKV_BLAS_KERNEL_SELECTED"),
                .qkv_cpu_bf16 = variable("QKV_CPU_BF16"),
                .omp_num_threads = variable("OMP_NUM_THREADS"),
                .openblas_num_threads = variable("OPENBLAS_NUM_THREADS"),
                .ompi_iallreduce_algorithm = variable("OMPI_MCA_coll_libnbc_iallreduce_algorithm")};
  for (const char* name :
       {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE", "SLURM_STEP_NUM_TASKS"})
    if (const std::string value = variable(name); !value.empty()) {
      e.launched = std::max(1, std::atoi(value.c_str()));
      e.launch_variable = name;
      break;
    }
  if (e.ompi_iallreduce_algorithm.empty()) {
    e.ompi_iallreduce_algorithm = "ring";
    e.iallreduce_set_by_qkv = true;
  }
  return e;
}

std::string environment_summary(const Environment& e) {
  auto shown = [](const std::string& value) { return value.empty() ? "unset" : value; };
  std::vector<std::string> parts{
      fmt::format("OPENBLAS_CORETYPE {}{}", shown(e.openblas_coretype),
                  e.blas_kernel_selected.empty() ? "" : " (set by qkv)"),
      fmt::format("QKV_CPU_BF16 {}", shown(e.qkv_cpu_bf16)),
      fmt::format("OMP_NUM_THREADS {}", shown(e.omp_num_threads)),
      fmt::format("OPENBLAS_NUM_THREADS {}", shown(e.openblas_num_threads))};
  if (e.launched > 1) parts.push_back(fmt::format("{} {}", e.launch_variable, e.launched));
  if (e.launched > 1 || !e.iallreduce_set_by_qkv)
    parts.push_back(fmt::format("OMPI_MCA_coll_libnbc_iallreduce_algorithm {}{}",
                                e.ompi_iallreduce_algorithm,
                                e.iallreduce_set_by_qkv ? " (set by qkv)" : ""));
  return fmt::format("environment: {}", fmt::join(parts, ", "));
}

}  // namespace qkv
