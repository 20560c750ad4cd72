#include "metrics_tail.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "qkv/io/regular_file.h"

namespace qkv::serve {

MetricsTail::Update MetricsTail::poll() {
  Update update;
  struct stat st;
  if (::stat(path_.c_str(), &st) != 0) return update;  // not written yet
  const int fd = io::open_regular(path_);
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return update;
  }
  if (st.st_ino != inode_ || st.st_size < offset_) {
    update.reset = inode_ != 0 || offset_ != 0;
    inode_ = st.st_ino;
    offset_ = 0;
  }
  std::string text(size_t(st.st_size - offset_), '\0');
  size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::pread(fd, text.data() + got, text.size() - got, offset_ + off_t(got));
    if (n <= 0) break;
    got += size_t(n);
  }
  ::close(fd);
  text.resize(got);
  const size_t end = text.rfind('\n');
  if (end == std::string::npos) return update;
  for (size_t start = 0; start <= end;) {
    const size_t nl = text.find('\n', start);
    auto j = nlohmann::json::parse(text.begin() + std::ptrdiff_t(start),
                                   text.begin() + std::ptrdiff_t(nl), nullptr,
                                   /*allow_exceptions=*/false);
    if (j.is_object()) update.lines.push_back(std::move(j));
    start = nl + 1;
  }
  offset_ += off_t(end + 1);
  return update;
}

void summarise(const std::vector<nlohmann::json>& lines, MetricsSummary& s) {
  for (const nlohmann::json& j : lines) {
    const auto iter = j.find("iter");
    if (iter == j.end() || !iter->is_number_integer()) continue;
    s.last_iter = std::max(s.last_iter, iter->get<int64_t>());
    const auto val = j.find("val_loss");
    if (val != j.end() && val->is_number() &&
        (s.best_val_loss.is_null() || val->get<double>() < s.best_val_loss.get<double>()))
      s.best_val_loss = *val;
  }
}

}  // namespace qkv::serve
