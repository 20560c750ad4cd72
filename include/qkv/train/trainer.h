// Trainer: the training loop behind `qkv train` — each step (step.h), periodic evaluation,
// metrics.jsonl, checkpoints, and resume that replays the same run bit for bit (same thread
// count).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "qkv/environment.h"
#include "qkv/io/config.h"
#include "qkv/optim/optimizer.h"
#include "qkv/optim/schedule.h"
#include "qkv/parallel/distributed.h"
#include "qkv/train/options.h"
#include "qkv/train/task.h"

namespace qkv::train {

// The learning-rate schedule of a run: optim.lr and optim.min_lr shaped by [schedule].
optim::ScheduleConfig schedule_config(const io::Config& config);
// The optimizer of a run: [optim], with Muon's Newton–Schulz in the run's precision.
optim::OptimizerConfig optimizer_config(const io::Config& config, Precision precision);

class Trainer {
 public:
  // Resolves the config (from the file, or from the checkpoint when resuming), loads the data,
  // builds the model and optimizer, and restores the checkpoint: every check that can fail, and
  // nothing written yet. `group`: the processes training together (one, alone); it must outlive
  // the Trainer. `env`: the environment, for the start-up log. Throws qkv::Error for bad input.
  Trainer(const TrainOptions& options, const parallel::Distributed& group, const Environment& env);
  ~Trainer();

  const io::Config& config() const { return config_; }
  const std::string& run_dir() const { return run_dir_; }
  Task& task() { return *task_; }  // the data and the model being trained

  // Creates and locks the run directory (the lock is held until the Trainer is destroyed), then
  // trains until max_iters (then evaluates and saves) or until `stop` is set on any process
  // (then saves what it trained). Returns true when the run reached max_iters.
  bool run(const std::atomic<bool>& stop);

 private:
  struct State;
  void build(std::optional<load::LoadedModel> loaded, const Environment& env);
  void restore(const io::CheckpointData& checkpoint, bool allow_data_change);
  bool evaluated_at(int64_t iter) const;
  // Whether the val loss is the best so far; nothing when `stop` was set during the evaluation.
  std::optional<bool> evaluate(int64_t iter, const std::atomic<bool>& stop);
  void train_step(int64_t iter);
  std::string save(int64_t iter);
  void finish(int64_t start, double minutes);

  io::Config config_;
  std::string run_dir_;
  std::unique_ptr<Task> task_;
  std::unique_ptr<optim::Optimizer> optimizer_;
  std::unique_ptr<State> state_;
};

}  // namespace qkv::train
