// Regular files only: the checks are made on what was opened (fstat) where qkv reads, and on
// the path just before it writes, since a write replaces the path by a rename.
#include "qkv/io/regular_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "qkv/error.h"
#include "qkv/io/durable_file.h"

namespace qkv::io {
namespace {

namespace fs = std::filesystem;

const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a plain file";
}

[[noreturn]] void refuse(const fs::path& path, mode_t mode, std::string_view why = "") {
  throw Error(fmt::format("{}: {}, not a regular file{}", path.string(), kind_of(mode), why));
}

}  // namespace

void require_regular(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw_os_error(path.string(), "cannot open", errno);
  if (!S_ISREG(st.st_mode)) refuse(path, st.st_mode);
}

int open_regular(const fs::path& path) {
  // A device is not even opened (opening one can act: a tape rewinds). The second check, on
  // what was opened, closes the race with a file swapped in between; O_NONBLOCK makes opening
  // a FIFO then return at once instead of waiting for a writer.
  require_regular(path);
  struct stat st {};
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw_os_error(path.string(), "cannot open", errno);
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    const mode_t mode = st.st_mode;
    ::close(fd);
    refuse(path, mode);
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

std::string read_regular_file(const fs::path& path) {
  const int fd = open_regular(path);
  std::string out;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      throw_os_error(path.string(), "cannot read", err);
    }
    if (n == 0) break;
    out.append(buf, size_t(n));
  }
  ::close(fd);
  return out;
}

void read_at(int fd, const std::string& path, uint64_t at, void* dst, size_t n) {
  for (size_t got = 0; got < n;) {
    const ssize_t r = ::pread(fd, static_cast<char*>(dst) + got, n - got, off_t(at + got));
    if (r < 0 && errno == EINTR) continue;
    QKV_CHECK(r > 0, "{}: cannot read bytes {}..{} ({})", path, at, at + n,
              r < 0 ? std::strerror(errno) : "the file is shorter than when it was opened");
    got += size_t(r);
  }
}

fs::path output_target(const fs::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return path;
    throw_os_error(path.string(), "cannot write", errno);
  }
  if (S_ISREG(st.st_mode)) return path;
  constexpr std::string_view kRole = "; qkv writes only to a new or a regular file";
  if (!S_ISLNK(st.st_mode)) refuse(path, st.st_mode, kRole);
  std::error_code ec;
  const fs::path target = fs::canonical(path, ec);
  QKV_CHECK(!ec, "{}: a symlink that does not lead to a file ({}){}", path.string(),
            ec.message(), kRole);
  if (::stat(target.c_str(), &st) != 0) throw_os_error(target.string(), "cannot write", errno);
  if (!S_ISREG(st.st_mode)) refuse(path, st.st_mode, kRole);
  return target;
}

}  // namespace qkv::io
