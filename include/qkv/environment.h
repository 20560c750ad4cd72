// The environment variables that steer qkv, read once at start-up into one value: the start-up
// log prints it whole, and the code each variable steers is given it.
#pragma once

#include <string>

namespace qkv {

struct Environment {
  // The OpenBLAS kernel: the user's OPENBLAS_CORETYPE, or qkv's own choice, made by re-executing
  // with it (select_blas_kernel), which QKV_BLAS_KERNEL_SELECTED explains.
  std::string openblas_coretype, blas_kernel_selected;
  std::string qkv_cpu_bf16;  // "0": run as if the CPU had no AVX512_BF16 (tests)
  std::string omp_num_threads, openblas_num_threads;  // what the libraries start with
  // The processes a launcher started (Open MPI's mpirun, MPICH and Intel MPI's Hydra, MVAPICH,
  // Slurm's srun) and the variable that says so; 1 and "" when none did.
  int launched = 1;
  std::string launch_variable;
  // Open MPI's algorithm for non-blocking allreduce: the user's, else the ring, which qkv sets
  // when it joins processes (dist/distributed.cpp says why).
  std::string ompi_iallreduce_algorithm;
  bool iallreduce_set_by_qkv = false;
};

// Call after select_blas_kernel, which may re-execute the program with another environment.
Environment read_environment();

// One line for the start-up log: each variable, set or not, and what qkv set itself.
std::string environment_summary(const Environment& env);

}  // namespace qkv
