// Follows a run's metrics.jsonl while the trainer appends to it. Only whole lines are read (the
// trainer may be in the middle of one), and a file replaced by a shorter one (a resumed run
// drops the lines it will write again) starts the reading over.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

namespace qkv::serve {

class MetricsTail {
 public:
  explicit MetricsTail(std::filesystem::path path) : path_(std::move(path)) {}

  struct Update {
    bool reset = false;  // the file was replaced: lines hold all of it, and earlier ones are void
    std::vector<nlohmann::json> lines;  // JSON objects; a line that is not one is skipped
  };
  // The lines appended since the last call (the whole file on the first). A missing file has
  // no lines yet.
  Update poll();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  ino_t inode_ = 0;
  off_t offset_ = 0;  // the end of the last whole line read
};

// The training lines {"iter", "loss", ...} and eval lines {"iter", "val_loss", ...} of a run
// summarised: the last iteration logged and the lowest validation loss (null before any).
struct MetricsSummary {
  int64_t last_iter = -1;
  nlohmann::json best_val_loss;
};
void summarise(const std::vector<nlohmann::json>& lines, MetricsSummary& summary);

}  // namespace qkv::serve
