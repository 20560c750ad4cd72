// Resolving a run's start: options, config, checkpoint and scale.
#include "start.h"

#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <span>

#include "parallel/checkpoint_broadcast.h"
#include "qkv/data/sha256.h"
#include "qkv/error.h"
#include "qkv/io/run_lock.h"

namespace fs = std::filesystem;

namespace qkv::train {

const std::vector<std::string>& resumable_keys() {
  static const std::vector<std::string> keys{"train.max_iters",     "schedule.lr_decay_iters",
                                             "train.eval_interval", "train.eval_iters",
                                             "train.log_interval",  "train.checkpoint_interval",
                                             "train.keep_last",     "train.threads",
                                             "train.precision",     "data.path"};
  return keys;
}

void check_options(const TrainOptions& options) {
  QKV_CHECK(options.resume.empty() || options.init_from.empty(),
            "--resume and --init-from exclude each other");
  QKV_CHECK(options.resume.empty() || options.config_path.empty(),
            "qkv train {} --resume {}: give a config or --resume, not both; a resumed run keeps "
            "the config it started with (its config.toml), and --set changes what may change",
            options.config_path, options.resume);
  if (options.resume.empty()) return;
  const auto& keys = resumable_keys();
  for (const std::string& o : options.overrides) {
    const std::string key = o.substr(0, o.find('='));
    QKV_CHECK(std::find(keys.begin(), keys.end(), key) != keys.end(),
              "--set {}: '{}' cannot change when resuming (it would change the model or the "
              "optimisation); keys that can: {}",
              o, key, fmt::join(keys, ", "));
  }
}

namespace {

bool present(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}
bool is_checkpoint(const fs::path& dir) {
  return present(dir / "manifest.json") || present(dir / "model.safetensors");
}
bool is_run(const fs::path& dir) {
  return io::holds_checkpoint(dir.string()) || present(dir / "metrics.jsonl") ||
         present(dir / ".lock");
}

}  // namespace

void check_no_checkpoint(const std::string& dir) {
  QKV_CHECK(!dir.empty(),
            "train.out_dir is empty; give the run directory with --out DIR or --set "
            "train.out_dir=DIR");
  std::error_code ec;
  const fs::path path = fs::weakly_canonical(fs::absolute(dir, ec), ec);
  QKV_CHECK(ec || !is_checkpoint(path),
            "{}: is a checkpoint directory; a run needs a directory of its own: choose another "
            "with --out or --set train.out_dir=...",
            dir);
  for (fs::path up = path.parent_path(); !ec && !up.empty(); up = up.parent_path()) {
    QKV_CHECK(!is_checkpoint(up),
              "{}: is inside the checkpoint {}; a run needs a directory of its own: choose "
              "another with --out or --set train.out_dir=...",
              dir, up.string());
    QKV_CHECK(!is_run(up),
              "{}: is inside the run directory {}; choose a directory outside it with --out or "
              "--set train.out_dir=...",
              dir, up.string());
    if (up == up.parent_path()) break;
  }
  QKV_CHECK(!io::holds_checkpoint(dir),
            "{}: already holds a run with checkpoints; continue it with `qkv train --resume {}`, "
            "or choose another directory with --out or --set train.out_dir=...",
            dir, dir);
}

int64_t grad_accum_at_scale(const io::TrainerState& state, int64_t saved_grad_accum,
                            const std::string& dir, const parallel::Distributed& group) {
  const int64_t m = state.micro_batches;
  QKV_CHECK(m % group.size() == 0,
            "{}: its steps have {} micro-batches, which {} processes cannot share evenly; resume "
            "with a number of processes that divides {}",
            dir, m, group.size(), m);
  if (m / group.size() != saved_grad_accum)
    spdlog::info("{} processes × grad_accum {}: the checkpoint's {} micro-batches per step",
                 group.size(), m / group.size(), m);
  return m / group.size();
}

namespace {

// Under an MPMD launch (`mpirun -np 1 qkv train --resume R : -np 1 qkv train C`) each rank
// would take its own path to its first collective and wait there for ever: every rank first
// agrees on the binary and on what it runs. Overrides are left to the config check, which names
// the config as what differs.
void agree_on_command(const TrainOptions& o, const parallel::Distributed& group) {
  if (group.size() == 1) return;
  group.check_same({{"qkv binary", data::sha256_file_hex("/proc/self/exe")}});
  std::string mine =
      o.resume.empty() ? "qkv train " + o.config_path : "qkv train --resume " + o.resume;
  if (!o.init_from.empty()) mine += " --init-from " + o.init_from;
  std::string first = mine;
  group.broadcast(first);
  int32_t differs = first != mine ? group.rank() : 0;
  group.max(std::span(&differs, 1));
  QKV_CHECK(differs == 0,
            "rank {} of {} runs another command than rank 0's `{}`; every process of a job must "
            "run the same one",
            differs, group.size(), first);
}

}  // namespace

Start resolve_start(const TrainOptions& o, const parallel::Distributed& group) {
  check_options(o);
  agree_on_command(o, group);
  Start s;
  if (!o.resume.empty()) {
    parallel::SharedCheckpoint shared = parallel::read_on_rank0(group, [&] {
      // A run still starting has no checkpoint yet: name its writer rather than a missing save.
      io::RunLock::check_free(o.resume);
      const std::string dir = io::resolve_checkpoint(o.resume);
      io::RunLock::check_free(fs::path(dir).parent_path().string());
      return parallel::SharedCheckpoint{dir, io::load_checkpoint(dir)};
    });
    s.checkpoint_dir = shared.dir;
    s.run_dir = fs::path(shared.dir).parent_path().string();
    s.resumed = std::move(shared.data);
    s.loaded = load::load_model(*s.resumed, shared.dir, {.overrides = o.overrides});
    s.config = s.loaded->config;
    return s;
  }
  QKV_CHECK(!o.config_path.empty(), "qkv train needs a config file (or --resume RUN)");
  s.config = io::load_config(o.config_path, o.overrides);
  s.run_dir = s.config.train.out_dir;
  if (group.writes()) {  // the run directory is rank 0's alone
    io::RunLock::check_free(s.run_dir);
    check_no_checkpoint(s.run_dir);
  }
  if (!o.init_from.empty()) {
    const parallel::SharedCheckpoint shared = parallel::read_on_rank0(group, [&] {
      const std::string dir = io::resolve_checkpoint(o.init_from);
      return parallel::SharedCheckpoint{dir, io::load_checkpoint(dir, /*with_optimizer=*/false)};
    });
    s.checkpoint_dir = shared.dir;
    s.loaded = load::load_model(shared.data, shared.dir,
                                {.config = s.config, .config_source = o.config_path});
  }
  return s;
}

}  // namespace qkv::train
