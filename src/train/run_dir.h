// A run directory while its trainer writes it: created and locked by rank 0, what the start
// checked without the lock checked again under it, and its config.toml written.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "qkv/io/config.h"
#include "qkv/io/run_lock.h"

namespace qkv::train {

// What a resumed run reopens its directory with.
struct Resumed {
  std::string resume_path;     // --resume as given
  std::string checkpoint_dir;  // what it resolved to at the start
  int64_t iter = 0;
  bool best = false;  // the checkpoint's last evaluation has the best val loss
};

// Returns the lock, held until destroyed. Throws qkv::Error when the directory cannot be
// created, or when another trainer wrote to it since the start.
std::unique_ptr<io::RunLock> open_run_dir(const std::string& run_dir, const io::Config& config,
                                          const std::optional<Resumed>& resumed);

// What a message that stops the run tells the user to do next.
std::string where_to_continue(const std::string& run_dir);

}  // namespace qkv::train
