// What this qkv was built from and with, and what it finds on the machine it runs on: the text
// of `qkv --version`, so that a bug report says what was built and where it ran.
#pragma once

#include <string>

#include "qkv/environment.h"

namespace qkv {

struct BuildInfo {
  std::string version;       // the release, e.g. "0.1.0"
  std::string git_revision;  // `git describe --always --dirty` when built; "unknown" from a tarball
  std::string compiler;      // e.g. "GNU 12.2.0"
  std::string cpu_flags;     // "-march=native": the build runs on CPUs like the build machine's
  std::string mpi;           // the MPI, e.g. "mpirun (Open MPI) 4.1.4"; empty when built without
};
BuildInfo build_info();

// The `qkv --version` text, three lines without the last newline: build_info(), then this machine's BLAS kernel and whether bf16 GEMMs
// run here (and why), as the start-up log would say.
std::string version_text(const Environment& env);

}  // namespace qkv
