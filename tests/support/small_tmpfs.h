// A small tmpfs mounted for one test, so that a test can fill a disk for real. Mounting needs
// root (CAP_SYS_ADMIN). Without it the test is skipped with a message saying so, except where
// QKV_TESTS_NEED_ROOT=1 (.ci/run sets it): there a test that cannot run fails.
#pragma once

#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>

#include <doctest/doctest.h>

namespace qkv::testing {

class SmallTmpfs {
 public:
  SmallTmpfs(std::string_view name, size_t bytes)
      : path_(std::filesystem::path(QKV_BINARY_DIR) / "test_tmp" /
              (std::string(name) + "-" + std::to_string(::getpid()))) {
    std::filesystem::create_directories(path_);
    const std::string options = "size=" + std::to_string(bytes) + ",mode=0755";
    if (::mount("tmpfs", path_.c_str(), "tmpfs", 0, options.c_str()) == 0)
      mounted_ = true;
    else
      why_not_ = std::strerror(errno);
  }
  ~SmallTmpfs() {
    if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  SmallTmpfs(const SmallTmpfs&) = delete;
  SmallTmpfs& operator=(const SmallTmpfs&) = delete;

  const std::filesystem::path& path() const { return path_; }

  // True when mounted. Otherwise reports why the test does not run: a message, or a failure
  // when QKV_TESTS_NEED_ROOT is set. Use as `if (!tmpfs.usable()) return;`.
  bool usable() const {
    if (mounted_) return true;
    const std::string why = "skipped: this test mounts a small tmpfs, which needs root (mount: " +
                            why_not_ + ")";
    const char* need = std::getenv("QKV_TESTS_NEED_ROOT");
    if (need && std::string_view(need) == "1") FAIL(why);
    MESSAGE(why);
    return false;
  }

  // Fills the free space with path()/filler, then frees `leave` bytes of it (whole pages).
  void fill(size_t leave = 0) const {
    const std::string filler = (path_ / "filler").string();
    const int fd = ::open(filler.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    REQUIRE(fd >= 0);
    const std::string page(4096, 'x');
    while (::write(fd, page.data(), page.size()) > 0) {
    }
    const off_t size = ::lseek(fd, 0, SEEK_END);
    REQUIRE(::ftruncate(fd, size > off_t(leave) ? size - off_t(leave) : 0) == 0);
    ::close(fd);
  }

 private:
  std::filesystem::path path_;
  bool mounted_ = false;
  std::string why_not_;
};

}  // namespace qkv::testing
