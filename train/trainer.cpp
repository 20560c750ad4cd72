// The training loop. Randomness comes from streams keyed by the config's seed and the iteration,
// so a checkpoint needs no generator state: each micro-batch's data and dropout masks (keyed by
// (seed, iter, micro-batch) too), and evaluation's batches, which never shift the training ones.
// Under mpirun every process runs this loop on its share of each step's micro-batches and
// evaluation batches (Distributed); rank 0 alone writes the run directory.
#include "trainer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

#include "checkpoint_broadcast.h"
#include "loss_plot.h"
#include "metrics.h"
#include "qkv/data/sha256.h"
#include "qkv/data/vocab.h"
#include "qkv/error.h"
#include "qkv/io/checkpoint.h"
#include "qkv/io/durable_file.h"
#include "qkv/io/run_lock.h"
#include "qkv/ops.h"
#include "qkv/optim/schedule.h"
#include "qkv/runtime.h"
#include "trainer_state.h"

namespace fs = std::filesystem;

namespace qkv::train {

std::atomic<bool> g_stop_requested{false};

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

struct Trainer::State {
  std::string resume_path;     // --resume as given
  std::string checkpoint_dir;  // resumed from, or the weights of --init-from
  std::unique_ptr<io::RunLock> lock;
  const Distributed& dist = distributed();
  int64_t iter = 0;
  bool resumed = false;
  double best_val_loss = INFINITY;
  nlohmann::json last_eval;
  int64_t last_saved = -1;
  PrecisionChoice precision;
  double peak_gflops = 0;  // GEMMs at the run's precision, measured at start-up
  std::unique_ptr<MetricsLog> metrics;
  std::unique_ptr<optim::ExactGradSum> grads;  // the parameters, and their exact grad sum
  optim::ScheduleConfig schedule;
  std::vector<double> recent_ms, recent_gflops;
  double last_loss = NAN;  // of the last step this process ran
};

namespace {

std::string duration_text(double seconds) {
  const auto s = static_cast<int64_t>(seconds);
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, s % 3600 / 60);
  if (s >= 60) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

// A new run may use a directory that holds no checkpoint: a new one, or one whose run stopped
// before its first save, where starting again loses nothing. Unreadable paths pass here:
// creating the directory then reports them.
void check_no_checkpoint(const std::string& dir) {
  QKV_CHECK(!io::holds_checkpoint(dir),
            "{}: already holds a run with checkpoints; continue it with `qkv train --resume {}`, "
            "or choose another directory with --out or --set train.out_dir=...",
            dir, dir);
}

// What a message that stops the run tells the user to do next.
std::string where_to_continue(const std::string& run_dir) {
  try {
    return fmt::format("the last checkpoint is {}; continue from it with `qkv train --resume {}`",
                       io::resolve_checkpoint(run_dir), run_dir);
  } catch (const Error&) {
    return fmt::format("no checkpoint was saved, so `qkv train` into {} starts it again", run_dir);
  }
}

// The grad_accum that keeps a resumed run's steps at the checkpoint's M micro-batches on this
// many processes. Checkpoints from before MPI record no micro_batches: theirs was grad_accum.
int64_t grad_accum_at_scale(const TrainerState& state, int64_t saved_grad_accum,
                            const std::string& dir, const Distributed& dist) {
  const int64_t m = state.micro_batches > 0 ? state.micro_batches : saved_grad_accum;
  QKV_CHECK(m % dist.size() == 0,
            "{}: its steps have {} micro-batches, which {} processes cannot share evenly; resume "
            "with a number of processes that divides {}",
            dir, m, dist.size(), m);
  if (m / dist.size() != saved_grad_accum)
    spdlog::info("{} processes × grad_accum {}: the checkpoint's {} micro-batches per step",
                 dist.size(), m / dist.size(), m);
  return m / dist.size();
}

}  // namespace

Trainer::~Trainer() = default;

Trainer::Trainer(const TrainOptions& o) : state_(std::make_unique<State>()) {
  check_options(o);
  state_->resume_path = o.resume;
  std::optional<io::CheckpointData> checkpoint;
  const Distributed& dist = state_->dist;
  if (!o.resume.empty()) {
    // Rank 0 alone reads the run directory: the others may not see it.
    SharedCheckpoint shared = read_on_rank0(dist, [&] {
      // A run still starting has no checkpoint yet: name its writer rather than a missing save.
      io::RunLock::check_free(o.resume);
      const std::string dir = io::resolve_checkpoint(o.resume);
      io::RunLock::check_free(fs::path(dir).parent_path().string());
      return SharedCheckpoint{dir, io::load_checkpoint(dir)};
    });
    state_->checkpoint_dir = shared.dir;
    run_dir_ = fs::path(state_->checkpoint_dir).parent_path().string();
    checkpoint = std::move(shared.data);
    config_ = checkpoint_config(*checkpoint, state_->checkpoint_dir, o.overrides);
  } else {
    QKV_CHECK(!o.config_path.empty(), "qkv train needs a config file (or --resume RUN)");
    config_ = io::load_config(o.config_path, o.overrides);
    run_dir_ = config_.train.out_dir;
    if (dist.writes()) {  // the run directory is rank 0's alone
      io::RunLock::check_free(run_dir_);
      check_no_checkpoint(run_dir_);
    }
    if (!o.init_from.empty()) {
      SharedCheckpoint shared = read_on_rank0(dist, [&] {
        const std::string dir = io::resolve_checkpoint(o.init_from);
        return SharedCheckpoint{dir, io::load_checkpoint(dir, /*with_optimizer=*/false)};
      });
      state_->checkpoint_dir = shared.dir;
      checkpoint = std::move(shared.data);
      const io::Config source = checkpoint_config(*checkpoint, state_->checkpoint_dir);
      QKV_CHECK(source.model.kind == config_.model.kind,
                "--init-from {}: the checkpoint holds a {} model, the config asks for {}",
                state_->checkpoint_dir, enum_name(source.model.kind),
                enum_name(config_.model.kind));
    }
  }
  build(checkpoint ? std::optional(data::Vocab::from_json(checkpoint->vocab,
                                                          state_->checkpoint_dir + "/vocab.json"))
                   : std::nullopt);
  if (checkpoint) {
    const std::string& dir = state_->checkpoint_dir;
    load_weights(task_->model(), *checkpoint, dir,
                 o.resume.empty() ? o.config_path : dir + "/config.toml");
    if (!o.resume.empty()) restore(*checkpoint, o.allow_data_change);
  }
  // Processes that disagree would each compute their own run and reduce garbage together.
  if (dist.size() > 1)
    dist.check_same({{"config", data::sha256_hex(io::to_toml(config_))},
                             {"training text", task_->fingerprint()},
                             {"qkv binary", data::sha256_file_hex("/proc/self/exe")}});
  state_->peak_gflops = measure_gemm_gflops(state_->precision.precision, 1024, 1024, 1024, 3);
}

// The data, the model at the run's precision, AdamW and the schedule.
void Trainer::build(const std::optional<data::Vocab>& vocab) {
  set_num_threads(static_cast<int>(config_.train.threads));
  state_->precision = choose_precision(config_.train.precision, "train.precision",
                                       bf16_support(std::getenv("QKV_CPU_BF16")));
  task_ = make_task(config_, vocab);
  task_->model().set_precision(state_->precision.precision);
  nn::Module& model = task_->model();
  optimizer_ = std::make_unique<optim::AdamW>(
      model.named_parameters(),
      optim::AdamWConfig{.beta1 = float(config_.optim.beta1),
                         .beta2 = float(config_.optim.beta2),
                         .eps = float(config_.optim.eps),
                         .weight_decay = float(config_.optim.weight_decay),
                         .decay_all = config_.optim.decay_all});
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
  const TrainerState s = read_trainer_state(checkpoint, dir);
  state_->iter = s.iter;
  config_.train.grad_accum = grad_accum_at_scale(s, config_.train.grad_accum, dir, state_->dist);
  // Checkpoints of qkv before keyed streams hold the state of sequential ones instead.
  if (checkpoint.trainer_state.contains("data_rng"))
    spdlog::info("{} was saved before per-step data streams: from iter {} on, batches and "
                 "dropout come from streams keyed by (seed, iter, micro-batch)",
                 dir, state_->iter);
  state_->best_val_loss = s.best_val_loss;
  state_->last_eval = s.last_eval;
  state_->resumed = true;
  state_->last_saved = state_->iter;
}

// Creates and locks the run directory, then checks again, under the lock, what the constructor
// checked without it: another process may have written to the directory since.
void Trainer::open_run_dir() {
  std::error_code ec;
  fs::create_directories(run_dir_, ec);
  QKV_CHECK(!ec, "{}: cannot create the run directory: {}; choose another with --out", run_dir_,
            ec.message());
  state_->lock = std::make_unique<io::RunLock>(run_dir_);
  if (state_->resumed) {
    QKV_CHECK(io::resolve_checkpoint(state_->resume_path) == state_->checkpoint_dir,
              "{}: another qkv train saved a checkpoint here while this one was starting; run "
              "the command again to continue from it",
              run_dir_);
  } else {
    check_no_checkpoint(run_dir_);
    if (fs::exists(fs::path(run_dir_) / "config.toml", ec))
      spdlog::warn("{} holds a run that stopped before its first checkpoint: starting it again",
                   run_dir_);
  }
  io::replace_file(run_dir_ + "/config.toml", io::to_toml(config_));
  state_->metrics = std::make_unique<MetricsLog>(run_dir_ + "/metrics.jsonl", state_->iter,
                                                 evaluated_at(state_->iter));
  // A crash between saving a best checkpoint and pointing `best` at it: point it now.
  const fs::path resumed_dir = fs::path(run_dir_) / fmt::format("checkpoint-{}", state_->iter);
  if (state_->resumed && evaluated_at(state_->iter) &&
      state_->last_eval.value("val_loss", double(NAN)) == state_->best_val_loss &&
      fs::equivalent(state_->checkpoint_dir, resumed_dir, ec))
    io::mark_best(run_dir_, state_->iter);
  if (!state_->checkpoint_dir.empty())
    spdlog::info("{} {} at iter {}", state_->resumed ? "resuming from" : "weights from",
                 state_->checkpoint_dir, state_->iter);
}

void Trainer::log_start() const {
  const auto& c = config_;
  spdlog::info("{}", runtime_summary());
  if (num_threads() == 1) spdlog::warn("running on one thread; set train.threads or --threads");
  spdlog::info("precision {} ({}); measured GEMM peak {:.0f} GFLOP/s (1024^3, {} threads)",
               enum_name(state_->precision.precision), state_->precision.why, state_->peak_gflops,
               num_threads());
  spdlog::info("{} model: {:.2f}M parameters, {} layers, {} heads, {} embd, block {}; vocab {}",
               enum_name(c.model.kind), double(task_->model().num_parameters()) / 1e6,
               c.model.n_layer, c.model.n_head, c.model.n_embd, c.model.block_size,
               task_->vocab().size());
  spdlog::info(
      "global batch {} sequences of up to {} characters: {} micro-batches of {} ({} process{} × "
      "grad_accum {})",
      global_batch(), c.model.block_size, c.train.grad_accum * state_->dist.size(),
      c.train.batch_size, state_->dist.size(), state_->dist.size() > 1 ? "es" : "",
      c.train.grad_accum);
  spdlog::info("run directory: {}", run_dir_);
}

std::string Trainer::save(int64_t iter) {
  state_->last_saved = iter;
  if (!state_->dist.writes()) return {};
  io::CheckpointData d;
  d.model = task_->model().state_dict();
  d.optimizer = optimizer_->state();
  d.optimizer_step = optimizer_->step_count();
  const double best = state_->best_val_loss;
  d.trainer_state = {
      {"iter", iter},
      {"best_val_loss", std::isfinite(best) ? nlohmann::json(best) : nlohmann::json()},
      {"last_eval", state_->last_eval},
      {"micro_batches", config_.train.grad_accum * state_->dist.size()},
      {"processes", state_->dist.size()},
      {"model_kind", enum_name(config_.model.kind)},
      {"num_parameters", task_->model().num_parameters()},
      {"qkv_version", QKV_VERSION}};
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

bool Trainer::evaluate(int64_t iter) {
  const auto& c = config_;
  const auto seed = static_cast<uint64_t>(c.train.seed);
  const EvalResult train =
      evaluate_at(*task_, data::Split::train, seed, iter, c.train.eval_iters, state_->dist);
  const EvalResult val =
      evaluate_at(*task_, data::Split::val, seed, iter, c.train.eval_iters, state_->dist);
  const double ln2 = std::log(2.0);
  spdlog::info(
      "eval iter {}: train loss {:.4f}, val loss {:.4f} ({:.3f} bits/char, accuracy {:.1f}%)", iter,
      train.loss, val.loss, val.loss / ln2, 100 * val.accuracy);
  state_->last_eval = {{"iter", iter},
                       {"train_loss", train.loss},
                       {"val_loss", val.loss},
                       {"val_bpc", val.loss / ln2},
                       {"val_accuracy", val.accuracy}};
  if (state_->metrics) {
    state_->metrics->append(state_->last_eval);
    try {
      write_run_loss_chart(run_dir_);
    } catch (const Error& e) {  // the chart is a convenience: never stop training for it
      spdlog::warn("loss.svg not updated: {}", e.what());
    }
  }
  // A checkpoint of this step saved before the evaluation (on Ctrl-C) does not record it: save
  // the step again, so that resuming from it does not evaluate again.
  if (state_->last_saved == iter) state_->last_saved = -1;
  const bool best = val.loss < state_->best_val_loss;
  if (best) state_->best_val_loss = val.loss;
  return best;
}

int64_t Trainer::global_batch() const {
  return config_.train.batch_size * config_.train.grad_accum * state_->dist.size();
}

optim::ScheduleConfig schedule_config(const io::Config& c) {
  return {.lr = float(c.optim.lr),
          .min_lr = float(c.optim.min_lr),
          .decay = c.schedule.decay,
          .warmup_iters = c.schedule.warmup_iters,
          .lr_decay_iters = c.schedule.lr_decay_iters};
}

double Trainer::train_step(int64_t iter) {
  const auto& c = config_;
  const float lr = optim::lr_at(iter, state_->schedule);
  const auto t0 = std::chrono::steady_clock::now();
  const auto [loss, norm, tokens, flops, reduce_ms] = optimisation_step(
      *task_, *optimizer_, *state_->grads, state_->dist, static_cast<uint64_t>(c.train.seed), iter,
      c.train.grad_accum, float(c.optim.grad_clip), lr, c.train.overlap);
  if (!std::isfinite(loss)) {
    // Only a loss that was finite at an earlier step of this process points at the updates.
    const std::string cause =
        std::isfinite(state_->last_loss)
            ? fmt::format("it was {:.4f} at iter {}, so the updates diverged: a lower optim.lr "
                          "(the peak is {}) or optim.grad_clip usually helps",
                          state_->last_loss, iter - 1, c.optim.lr)
            : "it was not finite at the first step, before this process updated anything, so "
              "optim.* is not the cause: look at the model.* sizes and the data";
    throw Error(fmt::format("training loss became {} at iter {}; {}; the weights were not saved; {}",
                            loss, iter, cause, where_to_continue(run_dir_)));
  }
  state_->last_loss = loss;
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();

  const double tokens_per_s = double(tokens) / ms * 1e3;
  const bool several = state_->dist.size() > 1;
  if (state_->metrics) {
    nlohmann::json line{{"iter", iter},         {"loss", loss},
                        {"lr", lr},             {"grad_norm", norm},
                        {"ms", ms},             {"tokens_per_s", tokens_per_s},
                        {"global_batch", global_batch()}};
    if (several) line["reduce_ms"] = reduce_ms;
    state_->metrics->append(line);
  }
  // Medians over the last 50 steps: one step preempted by another process moves neither.
  auto median_of = [](std::vector<double>& recent, double value) {
    recent.push_back(value);
    if (recent.size() > 50) recent.erase(recent.begin());
    std::vector<double> sorted = recent;
    std::nth_element(sorted.begin(), sorted.begin() + sorted.size() / 2, sorted.end());
    return sorted[sorted.size() / 2];
  };
  const double median_ms = median_of(state_->recent_ms, ms);
  const double gflops = median_of(state_->recent_gflops, flops / ms * 1e-6);
  if (iter % c.train.log_interval == 0) {
    // The peak was measured once, at start-up, under whatever load there was: a figure above
    // it says the measurement was low, not that the step beat the hardware, so none is shown.
    const double mfu = 100 * gflops / state_->peak_gflops;
    spdlog::info(
        "iter {:>6} | loss {:.4f} | lr {:.2e} | grad norm {:.3f} | {:.1f} ms{} | "
        "{:.1f}k tok/s | {:.0f} GFLOP/s{} | ETA {}",
        iter, loss, lr, norm, ms,
        several ? fmt::format(" ({:.1f} reducing)", reduce_ms) : std::string(),
        tokens_per_s / 1e3, gflops,
        mfu <= 100 ? fmt::format(" ({:.0f}% MFU)", mfu) : std::string(),
        duration_text(double(c.train.max_iters - iter - 1) * median_ms * 1e-3));
  }
  return loss;
}

bool Trainer::run() {
  // Ctrl-C while starting (on any process): nothing was written, nothing needs to be.
  if (state_->dist.any(g_stop_requested)) {
    spdlog::warn("stopped before training began; nothing was written");
    return false;
  }
  if (state_->dist.writes()) open_run_dir();
  log_start();
  const auto& c = config_;
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t start = state_->iter;
  for (int64_t iter = start;; ++iter) {
    state_->iter = iter;
    bool best = false;
    if ((iter % c.train.eval_interval == 0 || iter == c.train.max_iters) && !evaluated_at(iter))
      best = evaluate(iter);
    if (iter >= c.train.max_iters) break;  // the end-of-run save below marks best itself
    if (iter > 0 && state_->last_saved != iter &&
        (best || iter % c.train.checkpoint_interval == 0)) {
      const std::string path = save(iter);
      if (best && state_->dist.writes()) io::mark_best(run_dir_, iter);
      spdlog::info("saved {}{}", path, best ? " (best val loss so far)" : "");
    }
    train_step(iter);
    // Every process stops after the same step, when a signal reached any of them.
    if (state_->dist.any(g_stop_requested)) {
      const std::string path = save(iter + 1);
      spdlog::warn("stopped after iter {}; saved {}; continue with `qkv train --resume {}`", iter,
                   path, run_dir_);
      return false;
    }
  }
  const int64_t end = state_->iter;
  std::string path;
  if (state_->last_saved != end) path = save(end);
  const double best = state_->best_val_loss;
  if (!state_->dist.writes()) return true;
  if (!state_->last_eval.is_null() && state_->last_eval["val_loss"].get<double>() <= best)
    io::mark_best(run_dir_, end);
  const double minutes =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 60.0;
  const std::string checkpoint = path.empty() ? io::resolve_checkpoint(run_dir_) : path;
  if (end == start)
    spdlog::info(
        "nothing to train: the run is at iter {} and train.max_iters is {} (checkpoint "
        "{}); to train longer: qkv train --resume {} --set train.max_iters=N",
        end, c.train.max_iters, checkpoint, run_dir_);
  else
    spdlog::info("done: {} iterations in {:.1f} min; best val loss {:.4f}; checkpoint {}",
                 end - start, minutes, best, checkpoint);
  return true;
}

}  // namespace qkv::train
