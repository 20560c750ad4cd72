#include "support/run_command.h"

namespace qkv::testing {

Process::Process(const std::vector<std::string>& argv, const std::string& stdout_to) {
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

Process::~Process() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    reap();
  }
  std::error_code ignored;
  std::filesystem::remove(out_path_, ignored);
  std::filesystem::remove(err_path_, ignored);
}

bool Process::running() {
  if (pid_ > 0) reap(WNOHANG);
  return pid_ > 0;
}

CommandResult Process::wait() {
  if (pid_ > 0) reap();
  CommandResult r;
  r.exit_code = exit_code_;
  r.out = slurp(out_path_);
  r.err = slurp(err_path_);
  return r;
}

void Process::reap(int options) {
  int status = 0;
  pid_t done;
  while ((done = ::waitpid(pid_, &status, options)) < 0)
    if (errno != EINTR) throw std::runtime_error("waitpid: " + std::string(std::strerror(errno)));
  if (done == 0) return;  // WNOHANG, still running
  pid_ = -1;
  exit_code_ = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

std::string Process::slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

CommandResult run_command(const std::vector<std::string>& argv) {
  return Process(argv).wait();
}

}  // namespace qkv::testing
