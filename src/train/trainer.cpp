// The training loop. Randomness comes from streams keyed by the config's seed and the iteration,
// so a checkpoint needs no generator state: each micro-batch's data and dropout masks (keyed by
// (seed, iter, micro-batch) too), and evaluation's batches, which never shift the training ones.
// Under mpirun every process runs this loop on its share of each step's micro-batches and
// evaluation batches (parallel::Distributed); rank 0 alone writes the run directory.
#include "qkv/train/trainer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "progress.h"
#include "qkv/data/sha256.h"
#include "qkv/error.h"
#include "qkv/io/checkpoint.h"
#include "qkv/io/trainer_state.h"
#include "qkv/plot/loss_plot.h"
#include "qkv/runtime.h"
#include "qkv/train/step.h"
#include "run_dir.h"
#include "start.h"
#include "train/metrics.h"

namespace qkv::train {

struct Trainer::State {
  explicit State(const parallel::Distributed& group) : group(group) {}
  const parallel::Distributed& group;
  std::optional<Resumed> resumed;
  std::string checkpoint_dir;  // resumed from, or the weights of --init-from
  int64_t iter = 0;
  double best_val_loss = INFINITY;
  nlohmann::json last_eval;
  int64_t last_saved = -1;
  PrecisionChoice precision;
  std::unique_ptr<Progress> progress;
  std::unique_ptr<io::RunLock> lock;
  std::unique_ptr<MetricsLog> metrics;
  std::unique_ptr<optim::ExactGradSum> grads;  // the parameters, and their exact grad sum
  optim::ScheduleConfig schedule;
  double last_loss = NAN;  // of the last step this process ran
};

optim::ScheduleConfig schedule_config(const io::Config& c) {
  return {.lr = float(c.optim.lr),
          .min_lr = float(c.optim.min_lr),
          .decay = c.schedule.decay,
          .warmup_iters = c.schedule.warmup_iters,
          .lr_decay_iters = c.schedule.lr_decay_iters,
          .decay_fraction = c.schedule.decay_fraction};
}

optim::OptimizerConfig optimizer_config(const io::Config& c, Precision precision) {
  return {.kind = c.optim.kind,
          .lr = float(c.optim.lr),
          .adamw = {.beta1 = float(c.optim.beta1),
                    .beta2 = float(c.optim.beta2),
                    .eps = float(c.optim.eps),
                    .weight_decay = float(c.optim.weight_decay),
                    .decay_all = c.optim.decay_all},
          .muon = {.lr = c.optim.muon_lr, .momentum = c.optim.muon_momentum,
                   .precision = precision}};
}

Trainer::~Trainer() = default;

Trainer::Trainer(const TrainOptions& o, const parallel::Distributed& group, const Environment& env)
    : state_(std::make_unique<State>(group)) {
  Start start = resolve_start(o, group);
  config_ = std::move(start.config);
  run_dir_ = std::move(start.run_dir);
  state_->checkpoint_dir = std::move(start.checkpoint_dir);
  build(std::move(start.loaded), env);
  if (start.resumed) restore(*start.resumed, o.allow_data_change);
  if (start.resumed)
    state_->resumed =
        Resumed{.resume_path = o.resume,
                .checkpoint_dir = state_->checkpoint_dir,
                .iter = state_->iter,
                .best = evaluated_at(state_->iter) &&
                        state_->last_eval.value("val_loss", double(NAN)) == state_->best_val_loss};
  // Processes that disagree would each compute their own run and reduce garbage together.
  if (group.size() > 1)
    group.check_same({{"config", data::sha256_hex(io::to_toml(config_))},
                      {"training text", task_->fingerprint()}});
  state_->progress = std::make_unique<Progress>(
      config_, env, group.size(), state_->precision,
      measure_gemm_gflops(state_->precision.precision, 1024, 1024, 1024, 3));
}

// The data, the model at the run's precision, the optimizer and the schedule.
void Trainer::build(std::optional<load::LoadedModel> loaded, const Environment& env) {
  set_num_threads(static_cast<int>(config_.train.threads));
  state_->precision =
      choose_precision(config_.train.precision, "train.precision", bf16_support(env));
  task_ = make_task(config_, std::move(loaded), state_->precision.precision);
  nn::Module& model = task_->model();
  optimizer_ = std::make_unique<optim::Optimizer>(
      model.named_parameters(), optimizer_config(config_, state_->precision.precision));
  state_->grads = std::make_unique<optim::ExactGradSum>(
      model.named_parameters(), std::max<int64_t>(1, int64_t(config_.train.bucket_mb * 1e6 / 8)));
  state_->schedule = schedule_config(config_);
}

// The optimizer and trainer state of the checkpoint resumed from.
void Trainer::restore(const io::CheckpointData& checkpoint, bool allow_data_change) {
  const std::string& dir = state_->checkpoint_dir;
  QKV_CHECK(allow_data_change || checkpoint.data_fingerprint == task_->fingerprint(),
            "data.path: the training text differs from the one this run was trained on "
            "(SHA-256 {} in {}, {} now); pass --allow-data-change to continue on it anyway",
            checkpoint.data_fingerprint.substr(0, 12), dir, task_->fingerprint().substr(0, 12));
  optimizer_->load_state(checkpoint.optimizer, checkpoint.optimizer_step);
  const io::TrainerState s = io::read_trainer_state(checkpoint, dir);
  state_->iter = s.iter;
  config_.train.grad_accum = grad_accum_at_scale(s, config_.train.grad_accum, dir, state_->group);
  state_->best_val_loss = s.best_val_loss;
  state_->last_eval = s.last_eval;
  state_->last_saved = state_->iter;
}

std::string Trainer::save(int64_t iter) {
  state_->last_saved = iter;
  if (!state_->group.writes()) return {};
  io::CheckpointData d;
  d.model = task_->model().state_dict();
  d.optimizer = optimizer_->state();
  d.optimizer_step = optimizer_->step_count();
  d.trainer_state = io::to_json({.iter = iter,
                                 .micro_batches = config_.train.grad_accum * state_->group.size(),
                                 .processes = state_->group.size(),
                                 .best_val_loss = state_->best_val_loss,
                                 .last_eval = state_->last_eval,
                                 .model_kind = config_.model.kind,
                                 .num_parameters = task_->model().num_parameters()});
  d.config_toml = io::to_toml(config_);
  d.vocab = task_->vocab().to_json();
  d.data_fingerprint = task_->fingerprint();
  const std::string path = io::save_checkpoint(run_dir_, iter, d);
  io::prune_checkpoints(run_dir_, config_.train.keep_last);
  return path;
}

// A checkpoint saved right after an evaluation records it in last_eval, and resuming from it
// does not evaluate again; one saved on Ctrl-C at an evaluation step was saved before it.
bool Trainer::evaluated_at(int64_t iter) const {
  return state_->last_eval.is_object() && state_->last_eval.value("iter", int64_t{-1}) == iter;
}

std::optional<bool> Trainer::evaluate(int64_t iter, const std::atomic<bool>& stop) {
  const auto& c = config_;
  const auto seed = static_cast<uint64_t>(c.train.seed);
  const std::optional<EvalResult> train = evaluate_at(*task_, data::Split::train, seed, iter,
                                                      c.train.eval_iters, state_->group, stop);
  if (!train) return std::nullopt;
  const std::optional<EvalResult> val = evaluate_at(*task_, data::Split::val, seed, iter,
                                                    c.train.eval_iters, state_->group, stop);
  if (!val) return std::nullopt;
  const double ln2 = std::log(2.0);
  spdlog::info(
      "eval iter {}: train loss {:.4f}, val loss {:.4f} ({:.3f} bits/char, accuracy {:.1f}%)", iter,
      train->loss, val->loss, val->loss / ln2, 100 * val->accuracy);
  state_->last_eval = {{"iter", iter},
                       {"train_loss", train->loss},
                       {"val_loss", val->loss},
                       {"val_bpc", val->loss / ln2},
                       {"val_accuracy", val->accuracy}};
  if (state_->metrics) {
    state_->metrics->append(state_->last_eval);
    try {
      plot::write_run_loss_chart(run_dir_);
    } catch (const Error& e) {  // the chart is a convenience: never stop training for it
      spdlog::warn("loss.svg not updated: {}", e.what());
    }
  }
  // A checkpoint of this step saved before the evaluation (on Ctrl-C) does not record it: save
  // the step again, so that resuming from it does not evaluate again.
  if (state_->last_saved == iter) state_->last_saved = -1;
  const bool best = val->loss < state_->best_val_loss;
  if (best) state_->best_val_loss = val->loss;
  return best;
}

void Trainer::train_step(int64_t iter) {
  const auto& c = config_;
  const float lr = optim::lr_at(iter, state_->schedule);
  const auto t0 = std::chrono::steady_clock::now();
  const StepResult r = optimisation_step(
      *task_, *optimizer_, *state_->grads, state_->group, static_cast<uint64_t>(c.train.seed), iter,
      c.train.grad_accum, float(c.optim.grad_clip), lr, c.train.overlap);
  if (!std::isfinite(r.loss)) {
    // Only a loss that was finite at an earlier step of this process points at the updates.
    const std::string cause =
        std::isfinite(state_->last_loss)
            ? fmt::format(
                  "it was {:.4f} at iter {}, so the updates diverged: a lower optim.lr "
                  "(the peak is {}){} or optim.grad_clip usually helps",
                  state_->last_loss, iter - 1, c.optim.lr,
                  c.optim.kind == optim::OptimizerKind::muon
                      ? fmt::format(", a lower optim.muon_lr (it is {})", c.optim.muon_lr)
                      : std::string())
            : "it was not finite at the first step, before this process updated anything, so "
              "optim.* is not the cause: look at the model.* sizes and the data";
    throw Error(
        fmt::format("training loss became {} at iter {}; {}; the weights were not saved; {}",
                    r.loss, iter, cause, where_to_continue(run_dir_)));
  }
  state_->last_loss = r.loss;
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const nlohmann::json line = state_->progress->step(iter, lr, r, ms);
  if (state_->metrics) state_->metrics->append(line);
}

bool Trainer::run(const std::atomic<bool>& stop) {
  const parallel::Distributed& group = state_->group;
  // A stop while starting (on any process): nothing was written, nothing needs to be.
  if (group.any(stop)) {
    spdlog::warn("stopped before training began; nothing was written");
    return false;
  }
  if (group.writes()) {
    state_->lock = open_run_dir(run_dir_, config_, state_->resumed);
    state_->metrics = std::make_unique<MetricsLog>(run_dir_ + "/metrics.jsonl", state_->iter,
                                                   evaluated_at(state_->iter));
    if (!state_->checkpoint_dir.empty())
      spdlog::info("{} {} at iter {}", state_->resumed ? "resuming from" : "weights from",
                   state_->checkpoint_dir, state_->iter);
  }
  state_->progress->log_start(task_->model().num_parameters(), task_->vocab().size(), run_dir_);
  const auto& c = config_;
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t start = state_->iter;
  for (int64_t iter = start;; ++iter) {
    state_->iter = iter;
    bool best = false;
    if ((iter % c.train.eval_interval == 0 || iter == c.train.max_iters) && !evaluated_at(iter)) {
      const std::optional<bool> evaluated = evaluate(iter, stop);
      if (!evaluated) {  // a long evaluation is not waited for: resuming evaluates again
        const bool saved = state_->last_saved == iter;
        const std::string path = saved ? "" : save(iter);
        spdlog::warn("stopped while evaluating at iter {}; {}; continue with `qkv train --resume "
                     "{}`",
                     iter, saved ? "its checkpoint was saved" : "saved " + path, run_dir_);
        return false;
      }
      best = *evaluated;
    }
    if (iter >= c.train.max_iters) break;  // the end-of-run save below marks best itself
    if (iter > 0 && state_->last_saved != iter &&
        (best || iter % c.train.checkpoint_interval == 0)) {
      const std::string path = save(iter);
      if (best && group.writes()) io::mark_best(run_dir_, iter);
      spdlog::info("saved {}{}", path, best ? " (best val loss so far)" : "");
    }
    train_step(iter);
    // Every process stops after the same step, when a signal reached any of them.
    if (group.any(stop)) {
      const std::string path = save(iter + 1);
      spdlog::warn("stopped after iter {}; saved {}; continue with `qkv train --resume {}`", iter,
                   path, run_dir_);
      return false;
    }
  }
  const double minutes =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 60.0;
  finish(start, minutes);
  return true;
}

// The end of a run that reached max_iters: its last checkpoint saved and, when its last
// evaluation is the best, marked best.
void Trainer::finish(int64_t start, double minutes) {
  const int64_t end = state_->iter;
  std::string path;
  if (state_->last_saved != end) path = save(end);
  const double best = state_->best_val_loss;
  if (!state_->group.writes()) return;
  if (!state_->last_eval.is_null() && state_->last_eval["val_loss"].get<double>() <= best)
    io::mark_best(run_dir_, end);
  const std::string checkpoint = path.empty() ? io::resolve_checkpoint(run_dir_) : path;
  if (end == start)
    spdlog::info(
        "nothing to train: the run is at iter {} and train.max_iters is {} (checkpoint "
        "{}); to train longer: qkv train --resume {} --set train.max_iters=N",
        end, config_.train.max_iters, checkpoint, run_dir_);
  else
    spdlog::info("done: {} iterations in {:.1f} min; best val loss {:.4f}; checkpoint {}",
                 end - start, minutes, best, checkpoint);
}

}  // namespace qkv::train
