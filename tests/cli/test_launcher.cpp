// A qkv built without MPI, started by a launcher as one of several processes: each copy would
// train the same run into one directory, so it refuses, in one line, before writing anything.
// (With MPI, tests/mpi runs qkv under mpirun itself.)
#include <doctest/doctest.h>

#include <cstdlib>

#include "qkv_cli.h"

using namespace qkv::testing;

// Skipped when this qkv has MPI: it would join the launcher's processes instead.
TEST_CASE("qkv train built without MPI: under a launcher of 2 processes, one error line" *
          doctest::skip(QKV_TEST_WITH_MPI)) {
  TempDir dir("cli_launcher");
  const std::string data = dir.write("corpus.txt", generated_corpus(200));
  for (const char* variable : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}) {
    CAPTURE(variable);
    setenv(variable, "2", 1);  // what mpirun (Open MPI) or Hydra (MPICH) set in each process
    const CommandResult r = run_qkv(train_args(data, dir.path() / "run"));
    unsetenv(variable);
    CHECK(is_one_error_line(r));
    CHECK(r.err.find(std::string(variable) + "=2: a launcher started 2 copies of qkv, but this "
                     "qkv was built without MPI") != std::string::npos);
    CHECK(!fs::exists(dir.path() / "run"));
  }
  // Alone it trains.
  CHECK(run_qkv(train_args(data, dir.path() / "run", {"train.max_iters=2"})).exit_code == 0);
}
