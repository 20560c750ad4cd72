// Crash-safe file operations: POSIX calls, so every failure has its errno for the message.
#include "qkv/io/durable_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "qkv/error.h"
#include "qkv/io/regular_file.h"

namespace qkv::io {
namespace {

namespace fs = std::filesystem;

// Owns a file descriptor; close() reports errors where they matter (after writing). Errors name
// `where`: the path, or the file a temporary one stands in for.
class Fd {
 public:
  Fd(const fs::path& path, int flags, std::string_view what, std::string where = {})
      : where_(where.empty() ? path.string() : std::move(where)) {
    fd_ = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
    if (fd_ < 0) throw_os_error(where_, what, errno);
  }
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;

  void write_all(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_os_error(where_, "cannot write", errno);
      bytes.remove_prefix(size_t(n));
    }
  }
  void sync() {
    if (::fsync(fd_) != 0) throw_os_error(where_, "cannot sync to disk", errno);
  }
  void close() {
    if (::close(std::exchange(fd_, -1)) != 0) throw_os_error(where_, "cannot write", errno);
  }

 private:
  std::string where_;
  int fd_ = -1;
};

void write_synced(const fs::path& path, std::string_view bytes, std::string where) {
  Fd f(path, O_WRONLY | O_CREAT | O_TRUNC, "cannot create", std::move(where));
  f.write_all(bytes);
  f.sync();
  f.close();
}

}  // namespace

void throw_os_error(const std::string& where, std::string_view what, int err) {
  throw Error(fmt::format("{}: {}: {}", where, what, std::strerror(err)));
}

void write_file_synced(const fs::path& path, std::string_view bytes) {
  write_synced(output_target(path), bytes, path.string());
}

void replace_file(const fs::path& path, std::string_view bytes) {
  const fs::path target = output_target(path);
  fs::path tmp = target;
  tmp += ".tmp-" + std::to_string(::getpid());
  try {
    write_synced(tmp, bytes, path.string());
    if (::rename(tmp.c_str(), target.c_str()) != 0)
      throw_os_error(path.string(), "cannot replace", errno);
  } catch (const Error&) {
    ::unlink(tmp.c_str());
    throw;
  }
  sync_path(target.has_parent_path() ? target.parent_path() : fs::path("."));
}

void sync_path(const fs::path& path) { Fd(path, O_RDONLY, "cannot open to sync").sync(); }

fs::path rename_dir_replacing(const fs::path& from, const fs::path& to, const fs::path& aside) {
  if (::rename(from.c_str(), to.c_str()) == 0) return {};
  if (errno != EEXIST && errno != ENOTEMPTY)
    throw_os_error(to.string(), "cannot rename into place", errno);
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_EXCHANGE) == 0) return from;
  if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
    throw_os_error(to.string(), "cannot replace", errno);
  if (::rename(to.c_str(), aside.c_str()) != 0)
    throw_os_error(to.string(), "cannot move aside", errno);
  if (::rename(from.c_str(), to.c_str()) != 0) {
    const int err = errno;
    ::rename(aside.c_str(), to.c_str());  // best effort: put the old one back
    throw_os_error(to.string(), "cannot rename into place", err);
  }
  return aside;
}

}  // namespace qkv::io
