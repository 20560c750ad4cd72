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
  explicit Process(const std::vector<std::string>& argv, const std::string& stdout_to = "") {
    static std::atomic<int> counter{0};
    const auto dir = std::filesystem::path(QKV_BINARY_DIR) / "test_tmp";
    std::filesystem::create_directories(dir);
    const std::string stem =
        "command-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    out_path_ = dir / (stem + ".out");
    err_path_ = dir / (stem + ".err");

    posix_spawn_file_actions_t files;
    posix_spawn_file_actions_init(&files);
    posix_spawn_file_actions_addopen(&files, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&files, STDOUT_FILENO,
                                     stdout_to.empty() ? out_path_.c_str() : stdout_to.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&files, STDERR_FILENO, err_path_.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    // The child starts with default signal handling and nothing blocked, whatever the test
    // runner set up, so SIGINT reaches qkv's own handler.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const int rc = posix_spawn(&pid_, args[0], &files, &attr, args.data(), environ);
    posix_spawn_file_actions_destroy(&files);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
      pid_ = -1;
      throw std::runtime_error("cannot run " + argv.at(0) + ": " + std::strerror(rc));
    }
  }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  ~Process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      reap();
    }
    std::error_code ignored;
    std::filesystem::remove(out_path_, ignored);
    std::filesystem::remove(err_path_, ignored);
  }

  pid_t pid() const { return pid_; }
  // Where the running process's stderr goes, to read what it said so far.
  const std::filesystem::path& err_path() const { return err_path_; }
  void send(int signal) const {
    if (pid_ > 0) ::kill(pid_, signal);
  }

  // Whether the process still runs (an ended one is reaped, and wait() returns at once).
  bool running() {
    if (pid_ > 0) reap(WNOHANG);
    return pid_ > 0;
  }

  // Waits for the process to end and returns its exit code and output.
  CommandResult wait() {
    if (pid_ > 0) reap();
    CommandResult r;
    r.exit_code = exit_code_;
    r.out = slurp(out_path_);
    r.err = slurp(err_path_);
    return r;
  }

 private:
  void reap(int options = 0) {
    int status = 0;
    pid_t done;
    while ((done = ::waitpid(pid_, &status, options)) < 0)
      if (errno != EINTR) throw std::runtime_error("waitpid: " + std::string(std::strerror(errno)));
    if (done == 0) return;  // WNOHANG, still running
    pid_ = -1;
    exit_code_ = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
  }
  static std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  std::filesystem::path out_path_, err_path_;
  pid_t pid_ = -1;
  int exit_code_ = -1;
};

// Runs argv (argv[0] is a path, not looked up in PATH) to completion.
inline CommandResult run_command(const std::vector<std::string>& argv) {
  return Process(argv).wait();
}

}  // namespace qkv::testing
