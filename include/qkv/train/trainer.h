// Trainer: the training loop behind `qkv train` — batches, forward, loss, backward, clip, AdamW,
// schedule; periodic evaluation, metrics.jsonl, checkpoints, and resume that replays the same
// run bit for bit (same thread count).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qkv/io/config.h"
#include "qkv/optim/adamw.h"
#include "qkv/optim/schedule.h"
#include "qkv/train/step.h"
#include "qkv/train/task.h"

namespace qkv::train {

struct TrainOptions {
  std::string config_path;             // a new run (empty with resume)
  std::vector<std::string> overrides;  // --set section.key=value
  std::string resume;                  // run dir or checkpoint dir
  std::string init_from;               // checkpoint whose weights start a new run
  bool allow_data_change = false;      // resume on a training text that changed
};

// Keys that --set may change when resuming: they do not change the model, the data or the
// optimizer's meaning, only how long and how observably the run goes on.
const std::vector<std::string>& resumable_keys();
// Throws qkv::Error for options that exclude each other (a config with --resume, --resume with
// --init-from) and, when resuming, for the first --set of a key not in resumable_keys().
void check_options(const TrainOptions& options);

// The learning-rate schedule of a run: optim.lr and optim.min_lr shaped by [schedule].
optim::ScheduleConfig schedule_config(const io::Config& config);

// Set from a signal handler: the loop finishes its step, saves a checkpoint and returns.
extern std::atomic<bool> g_stop_requested;

class Trainer {
 public:
  // Resolves the config (from the file, or from the checkpoint when resuming), loads the data,
  // builds the model and optimizer, and restores the checkpoint: every check that can fail, and
  // nothing written yet. Throws qkv::Error for bad input.
  explicit Trainer(const TrainOptions& options);
  ~Trainer();

  const io::Config& config() const { return config_; }
  const std::string& run_dir() const { return run_dir_; }
  Task& task() { return *task_; }  // the data and the model being trained

  // Creates and locks the run directory (the lock is held until the Trainer is destroyed), then
  // trains until max_iters (then evaluates and saves) or until g_stop_requested (then saves what
  // it trained). Returns true when the run reached max_iters.
  bool run();

 private:
  struct State;
  void build(std::optional<load::LoadedModel> loaded);
  void restore(const io::CheckpointData& checkpoint, bool allow_data_change);
  void open_run_dir();
  void log_start() const;
  bool evaluated_at(int64_t iter) const;
  bool evaluate(int64_t iter);  // true when the val loss is the best so far
  double train_step(int64_t iter);
  int64_t global_batch() const;  // sequences per step, over all processes
  std::string save(int64_t iter);

  io::Config config_;
  std::string run_dir_;
  std::unique_ptr<Task> task_;
  std::unique_ptr<optim::AdamW> optimizer_;
  std::unique_ptr<State> state_;
};

}  // namespace qkv::train
