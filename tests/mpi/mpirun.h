// What the `mpirun ... qkv` tests share: starting qkv under Open MPI's launcher.
#pragma once

#include <unistd.h>

#include <string>
#include <vector>

#include "cli/qkv_cli.h"

namespace qkv::testing {

// The launcher's own options: the ranks may share the cores (--oversubscribe), and may run as
// root, as in CI containers (Open MPI refuses root otherwise).
inline std::vector<std::string> mpirun_options() {
  std::vector<std::string> argv{QKV_MPIEXEC, "--oversubscribe"};
  if (geteuid() == 0) argv.push_back("--allow-run-as-root");
  return argv;
}

// `mpirun -np N qkv args...`, as argv.
inline std::vector<std::string> mpirun_argv(int processes, const std::vector<std::string>& args) {
  std::vector<std::string> argv = mpirun_options();
  argv.insert(argv.end(), {"-np", std::to_string(processes), kQkv});
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

inline CommandResult mpirun(int processes, const std::vector<std::string>& args) {
  return run_command(mpirun_argv(processes, args));
}

}  // namespace qkv::testing
