// Distributed outside mpirun: how a process tells it was launched as one of many, and that alone
// it is rank 0 of 1, whose reductions change nothing.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <vector>

#include "qkv/parallel/distributed.h"

using namespace qkv::parallel;

namespace {

const char* const kVariables[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE",
                                  "SLURM_STEP_NUM_TASKS"};

}  // namespace

TEST_CASE("distributed: each launcher's process count is read from its environment") {
  for (const char* v : kVariables) unsetenv(v);
  CHECK(qkv::read_environment().launched == 1);
  for (const char* v : kVariables) {
    CAPTURE(v);
    setenv(v, "3", 1);
    const qkv::Environment e = qkv::read_environment();
    CHECK(e.launched == 3);
    CHECK(e.launch_variable == v);
    unsetenv(v);
  }
  setenv("OMPI_COMM_WORLD_SIZE", "1", 1);  // mpirun -np 1: one process
  CHECK(qkv::read_environment().launched == 1);
  unsetenv("OMPI_COMM_WORLD_SIZE");
}

TEST_CASE("distributed: a process started alone is rank 0 of 1 and reduces to itself") {
  static const std::atomic<bool> stop{false};  // as long as the group: the process
  const Distributed& d = join_launched_processes(qkv::read_environment(), stop);
  CHECK(d.rank() == 0);
  CHECK(d.size() == 1);
  CHECK(d.writes());
  std::vector<int64_t> v{3, -4};
  d.sum(std::span(v));
  CHECK(v == std::vector<int64_t>{3, -4});
  CHECK(d.any(true));
  CHECK(!d.any(false));
}
