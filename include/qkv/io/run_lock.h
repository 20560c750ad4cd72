// One writer per run directory: `qkv train` holds an exclusive lock on RUN/.lock (a POSIX record
// lock, fcntl F_SETLK) for as long as it runs. The kernel releases it when the process ends,
// however it ends, so a lock left by a process that died is free again: nothing stale to clean.
#pragma once

#include <sys/types.h>

#include <string>

namespace qkv::io {

class RunLock {
 public:
  // Creates RUN/.lock if needed and locks it. Throws qkv::Error "RUN: another qkv train (pid N)
  // is writing to this run directory; ..." when another process holds it.
  explicit RunLock(const std::string& run_dir);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

  // Throws the same error when another process holds RUN's lock; creates and changes nothing,
  // so a command can refuse early, before its slow checks.
  static void check_free(const std::string& run_dir);

  // The pid of the process holding RUN's lock (a qkv train writing to it), or 0 when none does.
  // Creates and changes nothing. A process sees its own lock as free (POSIX record locks).
  static pid_t holder(const std::string& run_dir);

 private:
  int fd_ = -1;
};

}  // namespace qkv::io
