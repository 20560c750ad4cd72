// The run directory lock across processes: a second holder is refused with the first one's pid,
// and the lock of a process that died is free again.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <functional>

#include "qkv/error.h"
#include "qkv/io/run_lock.h"
#include "support/error_of.h"
#include "support/temp_dir.h"

using namespace qkv;
using qkv::testing::error_of;
using qkv::testing::TempDir;
namespace fs = std::filesystem;

namespace {

// A child process that holds RUN's lock until it is killed.
class Holder {
 public:
  explicit Holder(const std::string& run) {
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      io::RunLock lock(run);
      [[maybe_unused]] auto n = ::write(ready[1], "x", 1);
      for (;;) ::pause();
    }
    char c = 0;
    REQUIRE(::read(ready[0], &c, 1) == 1);
    ::close(ready[0]);
    ::close(ready[1]);
  }
  ~Holder() { kill(); }
  pid_t pid() const { return pid_; }
  // SIGKILL: the holder gets no chance to release anything itself.
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

}  // namespace

TEST_CASE("run lock: a second writer is refused with one line naming the holder's pid") {
  TempDir tmp("run-lock-held");
  const std::string run = tmp.path().string();
  Holder holder(run);
  const std::string expected = fmt::format(
      "{}: another qkv train (pid {}) is writing to this run directory", run, holder.pid());
  CHECK(error_of([&] { io::RunLock lock(run); }).starts_with(expected));
  CHECK(error_of([&] { io::RunLock::check_free(run); }).starts_with(expected));
}

TEST_CASE("run lock: the lock of a process killed with SIGKILL is taken over") {
  TempDir tmp("run-lock-stale");
  const std::string run = tmp.path().string();
  Holder holder(run);
  holder.kill();
  REQUIRE(fs::exists(tmp.path() / ".lock"));
  CHECK(error_of([&] { io::RunLock::check_free(run); }) == "");
  CHECK(error_of([&] { io::RunLock lock(run); }) == "");
}

TEST_CASE("run lock: checking a directory that was never locked creates nothing") {
  TempDir tmp("run-lock-check");
  io::RunLock::check_free(tmp.path().string());
  CHECK(fs::is_empty(tmp.path()));
}
