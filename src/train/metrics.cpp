#include "metrics.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <sstream>

#include "qkv/io/durable_file.h"
#include "qkv/io/regular_file.h"

namespace qkv::train {
namespace {

// The lines a run resumed at from_iter keeps. A line cut short by a crash, or one without an
// integer iter, is dropped: nothing reads it.
std::string kept_lines(const std::string& path, int64_t from_iter, bool evaluated_at_from) {
  std::istringstream in(io::read_regular_file(path));
  std::string kept;
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("iter") || !j["iter"].is_number_integer()) continue;
    const auto it = j["iter"].get<int64_t>();
    const bool eval_kept = it < from_iter || (it == from_iter && evaluated_at_from);
    if (j.contains("val_loss") ? eval_kept : it < from_iter) kept += line + '\n';
  }
  return kept;
}

}  // namespace

MetricsLog::MetricsLog(const std::string& path, int64_t from_iter, bool evaluated_at_from)
    : path_(path) {
  const std::filesystem::path target = io::output_target(path);
  if (::access(target.c_str(), F_OK) == 0)
    io::replace_file(path, kept_lines(path, from_iter, evaluated_at_from));
  fd_ = ::open(target.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) io::throw_os_error(path, "cannot open for appending", errno);
}

MetricsLog::~MetricsLog() {
  if (fd_ >= 0) ::close(fd_);
}

void MetricsLog::append(nlohmann::json line) {
  line["time"] =
      std::round(std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
                     .count() *
                 1e3) /
      1e3;
  const std::string text = line.dump() + '\n';
  const off_t before = ::lseek(fd_, 0, SEEK_END);
  std::string_view rest = text;
  while (!rest.empty()) {
    const ssize_t n = ::write(fd_, rest.data(), rest.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      // Cut off what the disk took of the line, so that the next one starts a line of its own.
      if (before >= 0) (void)!::ftruncate(fd_, before);
      io::throw_os_error(path_, "cannot append", err);
    }
    rest.remove_prefix(size_t(n));
  }
}

}  // namespace qkv::train
