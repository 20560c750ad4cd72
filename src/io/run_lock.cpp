// The run directory lock. A POSIX record lock rather than flock(): F_GETLK tells who holds it,
// so the refusal names the holder's pid without a pid file that could be stale or half written.
// Note: closing any descriptor of RUN/.lock drops the process's lock, so only RunLock opens it.
#include "qkv/io/run_lock.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "qkv/error.h"
#include "qkv/io/durable_file.h"
#include "qkv/io/regular_file.h"

namespace qkv::io {
namespace {

std::string lock_path(const std::string& run_dir) { return run_dir + "/.lock"; }

struct flock whole_file(short type) {
  struct flock l = {};
  l.l_type = type;
  l.l_whence = SEEK_SET;  // l_start = l_len = 0: the whole file
  return l;
}

// The pid holding fd's file locked, or 0 when nobody does.
pid_t lock_holder(int fd, const std::string& path) {
  struct flock l = whole_file(F_WRLCK);
  if (::fcntl(fd, F_GETLK, &l) != 0) throw_os_error(path, "cannot test the lock", errno);
  return l.l_type == F_UNLCK ? 0 : l.l_pid;
}

[[noreturn]] void refuse(const std::string& run_dir, pid_t pid) {
  throw Error(fmt::format(
      "{}: another qkv train (pid {}) is writing to this run directory; wait for it to end, "
      "stop it (kill -INT {} saves first), or choose another directory with --out",
      run_dir, pid, pid));
}

}  // namespace

RunLock::RunLock(const std::string& run_dir) {
  const std::string path = lock_path(run_dir);
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw_os_error(path, "cannot create the lock file", errno);
  struct flock l = whole_file(F_WRLCK);
  if (::fcntl(fd_, F_SETLK, &l) == 0) return;
  const int err = errno;
  const pid_t pid = err == EACCES || err == EAGAIN ? lock_holder(fd_, path) : 0;
  ::close(fd_);
  fd_ = -1;
  if (pid > 0) refuse(run_dir, pid);
  throw_os_error(path, "cannot lock", err == EAGAIN ? EBUSY : err);
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock
}

void RunLock::check_free(const std::string& run_dir) {
  if (const pid_t pid = RunLock::holder(run_dir); pid > 0) refuse(run_dir, pid);
}

pid_t RunLock::holder(const std::string& run_dir) {
  const std::string path = lock_path(run_dir);
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return 0;  // no lock file: nobody ever locked it
  const int fd = open_regular(path);
  pid_t pid = 0;
  try {
    pid = lock_holder(fd, path);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  return pid;
}

}  // namespace qkv::io
