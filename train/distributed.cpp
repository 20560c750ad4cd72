// The MPI side of data-parallel training: built with MPI when CMake found it (QKV_HAVE_MPI),
// and without it a process that knows it runs alone and refuses to run as one of many.
#include "distributed.h"

#include <algorithm>
#include <cstdlib>
#include <string>

#include <spdlog/spdlog.h>

#include "qkv/error.h"

#ifdef QKV_HAVE_MPI
// The C API only: mpi.h would otherwise pull in the deprecated C++ bindings, which need libraries
// FindMPI's C target does not link.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace qkv::train {

namespace {

Distributed& group() {
  static Distributed g;
  return g;
}

#ifdef QKV_HAVE_MPI
// MPI counts elements in int: larger buffers go in chunks.
template <class T>
void allreduce(std::span<T> values, MPI_Datatype type, MPI_Op op) {
  constexpr size_t kChunk = size_t{1} << 30;
  for (size_t i = 0; i < values.size(); i += kChunk)
    MPI_Allreduce(MPI_IN_PLACE, values.data() + i, int(std::min(kChunk, values.size() - i)), type,
                  op, MPI_COMM_WORLD);
}

// MPI_Finalize at exit, after every reduction; MPI_Abort (end_job_after_error) skips it.
struct Finalizer {
  ~Finalizer() { MPI_Finalize(); }
};
#endif

}  // namespace

void Distributed::max(std::span<int32_t> values) const {
#ifdef QKV_HAVE_MPI
  if (size_ > 1) allreduce(values, MPI_INT32_T, MPI_MAX);
#endif
}

void Distributed::sum(std::span<int64_t> values) const {
#ifdef QKV_HAVE_MPI
  if (size_ > 1) allreduce(values, MPI_INT64_T, MPI_SUM);
#endif
}

void Distributed::sum(std::span<double> values) const {
#ifdef QKV_HAVE_MPI
  if (size_ > 1) allreduce(values, MPI_DOUBLE, MPI_SUM);
#endif
}

bool Distributed::any(bool flag) const {
  int32_t v = flag;
  max(std::span(&v, 1));
  return v != 0;
}

void Distributed::end_job_after_error(int exit_code) const {
#ifdef QKV_HAVE_MPI
  if (size_ > 1) MPI_Abort(MPI_COMM_WORLD, exit_code);
#endif
}

Launch launched_processes() {
  for (const char* variable :
       {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE", "SLURM_STEP_NUM_TASKS"})
    if (const char* value = std::getenv(variable)) return {std::max(1, std::atoi(value)), variable};
  return {};
}

const Distributed& join_launched_processes() {
  Distributed& g = group();
  const Launch launch = launched_processes();
  if (launch.size == 1) return g;
#ifdef QKV_HAVE_MPI
  static Finalizer finalizer;
  int provided = 0;
  // Only the main thread calls MPI; OpenMP's threads compute between the calls.
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &g.rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &g.size_);
  if (g.rank_ != 0) spdlog::set_level(spdlog::level::err);
  return g;
#else
  throw Error(fmt::format(
      "{}={}: a launcher started {} copies of qkv, but this qkv was built without MPI, so each "
      "would train the same run into one directory; rebuild it with libopenmpi-dev installed, "
      "or run one process",
      launch.variable, launch.size, launch.size));
#endif
}

const Distributed& distributed() { return group(); }

}  // namespace qkv::train
