// Runs a program as a user would from a shell: posix_spawn (fork + exec), stdin from /dev/null,
// stdout and stderr captured to files, and the exit code as a shell reports it. For tests that
// drive the `qkv` command, including ones that signal it while it runs.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace qkv::testing {

struct CommandResult {
  int exit_code = -1;  // the exit status, or 128 + N when signal N ended the process
  std::string out;     // everything written to stdout
  std::string err;     // everything written to stderr
};

// A started child process. Destroying it kills (SIGKILL) and reaps a child still running, so a
// failing test leaves no process behind.
class Process {
 public:
  // stdout_to: a file stdout writes to instead of the capture (/dev/full, to test write errors).
  explicit Process(const std::vector<std::string>& argv, const std::string& stdout_to = "");
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  ~Process();

  pid_t pid() const { return pid_; }
  // Where the running process's stderr goes, to read what it said so far.
  const std::filesystem::path& err_path() const { return err_path_; }
  void send(int signal) const {
    if (pid_ > 0) ::kill(pid_, signal);
  }

  // Whether the process still runs (an ended one is reaped, and wait() returns at once).
  bool running();

  // Waits for the process to end and returns its exit code and output.
  CommandResult wait();

 private:
  void reap(int options = 0);
  static std::string slurp(const std::filesystem::path& p);

  std::filesystem::path out_path_, err_path_;
  pid_t pid_ = -1;
  int exit_code_ = -1;
};

// Runs argv (argv[0] is a path, not looked up in PATH) to completion.
CommandResult run_command(const std::vector<std::string>& argv);

}  // namespace qkv::testing
