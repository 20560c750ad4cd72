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
#include "qkv/optim/exact_grad_sum.h"
#include "qkv/optim/schedule.h"
#include "task.h"

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
// Throws qkv::Error naming the first --set that changes a key not in resumable_keys().
void check_resumable_overrides(const std::vector<std::string>& overrides);

// The streams micro-batch m of step iter draws from: its data (windows, masked positions) and
// its dropout masks, keyed by (train.seed, iter, m). A step's data therefore does not depend on
// how many processes share its micro-batches, nor on any state but iter.
Rng micro_batch_data_rng(uint64_t seed, int64_t iter, int64_t micro_batch);
Rng micro_batch_dropout_rng(uint64_t seed, int64_t iter, int64_t micro_batch);

// One optimisation step, the math of every `qkv train` iteration: drop the grads, run
// grad_accum micro-batches of forward + backward (micro-batch m from the streams of
// (seed, iter, m); each loss scaled by 1/grad_accum), sum their gradients exactly (ExactGradSum:
// the bits do not depend on how micro-batches are grouped), clip the global grad norm to
// grad_clip, then one AdamW update at lr. Shared with bench/bench_train.
struct StepResult {
  double loss = 0;      // mean over the micro-batches
  float grad_norm = 0;  // before clipping
  int64_t tokens = 0;   // positions computed, and their forward and backward FLOPs (Task)
  double flops = 0;
};
StepResult optimisation_step(Task& task, optim::AdamW& optimizer, optim::ExactGradSum& grads,
                             uint64_t seed, int64_t iter, int64_t grad_accum, float grad_clip,
                             float lr);

// The learning-rate schedule of a run: optim.lr and optim.min_lr shaped by [schedule].
optim::ScheduleConfig schedule_config(const io::Config& config);

// Set from a signal handler: the loop finishes its step, saves a checkpoint and returns.
extern std::atomic<bool> g_stop_requested;

class Trainer {
 public:
  // Resolves the config (from the file, or from the checkpoint when resuming), loads the data,
  // builds the model and optimizer, and restores the checkpoint. Throws qkv::Error for bad input.
  explicit Trainer(const TrainOptions& options);
  ~Trainer();

  const io::Config& config() const { return config_; }
  const std::string& run_dir() const { return run_dir_; }

  // Trains until max_iters (then evaluates and saves) or until g_stop_requested (then saves).
  // Returns true when the run reached max_iters.
  bool run();

 private:
  struct State;
  void log_start() const;
  bool evaluated_at(int64_t iter) const;
  bool evaluate(int64_t iter);  // true when the val loss is the best so far
  double train_step(int64_t iter);
  std::string save(int64_t iter);
  void restore(const std::string& checkpoint_dir);

  io::Config config_;
  std::string run_dir_;
  std::unique_ptr<Task> task_;
  std::unique_ptr<optim::AdamW> optimizer_;
  std::unique_ptr<State> state_;
};

}  // namespace qkv::train
