#include "run_dir.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <filesystem>

#include "qkv/error.h"
#include "qkv/io/checkpoint.h"
#include "qkv/io/durable_file.h"
#include "start.h"

namespace fs = std::filesystem;

namespace qkv::train {

std::unique_ptr<io::RunLock> open_run_dir(const std::string& run_dir, const io::Config& config,
                                          const std::optional<Resumed>& resumed) {
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  QKV_CHECK(!ec, "{}: cannot create the run directory: {}; choose another with --out", run_dir,
            ec.message());
  auto lock = std::make_unique<io::RunLock>(run_dir);
  if (resumed) {
    QKV_CHECK(io::resolve_checkpoint(resumed->resume_path) == resumed->checkpoint_dir,
              "{}: another qkv train saved a checkpoint here while this one was starting; run "
              "the command again to continue from it",
              run_dir);
  } else {
    check_no_checkpoint(run_dir);
    if (fs::exists(fs::path(run_dir) / "config.toml", ec))
      spdlog::warn("{} holds a run that stopped before its first checkpoint: starting it again",
                   run_dir);
  }
  io::replace_file(run_dir + "/config.toml", io::to_toml(config));
  // A crash between saving a best checkpoint and pointing `best` at it: point it now.
  if (resumed && resumed->best &&
      fs::equivalent(resumed->checkpoint_dir,
                     fs::path(run_dir) / fmt::format("checkpoint-{}", resumed->iter), ec))
    io::mark_best(run_dir, resumed->iter);
  return lock;
}

std::string where_to_continue(const std::string& run_dir) {
  try {
    return fmt::format("the last checkpoint is {}; continue from it with `qkv train --resume {}`",
                       io::resolve_checkpoint(run_dir), run_dir);
  } catch (const Error&) {
    return fmt::format("no checkpoint was saved, so `qkv train` into {} starts it again", run_dir);
  }
}

}  // namespace qkv::train
