// The environment, read once: what it holds, and the one line the start-up log prints.
#include <doctest/doctest.h>

#include <cstdlib>
#include <string>

#include "qkv/environment.h"

using namespace qkv;

TEST_CASE("environment: Open MPI's allreduce algorithm is the user's, else the ring qkv sets") {
  unsetenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm");
  const Environment ours = read_environment();
  CHECK(ours.ompi_iallreduce_algorithm == "ring");
  CHECK(ours.iallreduce_set_by_qkv);
  setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "0", 1);
  const Environment theirs = read_environment();
  unsetenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm");
  CHECK(theirs.ompi_iallreduce_algorithm == "0");
  CHECK_FALSE(theirs.iallreduce_set_by_qkv);
  CHECK(environment_summary(theirs).find("OMPI_MCA_coll_libnbc_iallreduce_algorithm 0") !=
        std::string::npos);
}

TEST_CASE("environment: the summary names every variable, set or not") {
  setenv("QKV_CPU_BF16", "0", 1);
  const std::string s = environment_summary(read_environment());
  unsetenv("QKV_CPU_BF16");
  CHECK(s.starts_with("environment: OPENBLAS_CORETYPE "));
  CHECK(s.find("QKV_CPU_BF16 0") != std::string::npos);
  CHECK(s.find("OMP_NUM_THREADS ") != std::string::npos);
  CHECK(s.find("OPENBLAS_NUM_THREADS ") != std::string::npos);
}
