#include "progress.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace qkv::train {
namespace {

std::string duration_text(double seconds) {
  const auto s = static_cast<int64_t>(seconds);
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, s % 3600 / 60);
  if (s >= 60) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

// The median of the last 50 values: one step preempted by another process does not move it.
double median_of(std::vector<double>& recent, double value) {
  recent.push_back(value);
  if (recent.size() > 50) recent.erase(recent.begin());
  std::vector<double> sorted = recent;
  std::nth_element(sorted.begin(), sorted.begin() + sorted.size() / 2, sorted.end());
  return sorted[sorted.size() / 2];
}

}  // namespace

Progress::Progress(const io::Config& config, const Environment& env, int processes,
                   PrecisionChoice precision, double peak_gflops)
    : config_(config),
      env_(env),
      processes_(processes),
      precision_(precision),
      peak_gflops_(peak_gflops) {}

int64_t Progress::global_batch() const {
  return config_.train.batch_size * config_.train.grad_accum * processes_;
}

void Progress::log_start(int64_t parameters, int64_t vocab_size, const std::string& run_dir) const {
  const auto& c = config_;
  spdlog::info("{}", runtime_summary(env_));
  spdlog::info("{}", environment_summary(env_));
  if (num_threads() == 1) spdlog::warn("running on one thread; set train.threads or --threads");
  spdlog::info("precision {} ({}); measured GEMM peak {:.0f} GFLOP/s (1024^3, {} threads)",
               enum_name(precision_.precision), precision_.why, peak_gflops_, num_threads());
  spdlog::info("{} model: {:.2f}M parameters, {} layers, {} heads, {} embd, block {}; vocab {}",
               enum_name(c.model.kind), double(parameters) / 1e6, c.model.n_layer, c.model.n_head,
               c.model.n_embd, c.model.block_size, vocab_size);
  spdlog::info(
      "global batch {} sequences of up to {} characters: {} micro-batches of {} ({} process{} × "
      "grad_accum {})",
      global_batch(), c.model.block_size, c.train.grad_accum * processes_, c.train.batch_size,
      processes_, processes_ > 1 ? "es" : "", c.train.grad_accum);
  if (c.optim.kind == optim::OptimizerKind::muon)
    spdlog::info("optimizer muon: Muon for the blocks' matrices (muon_lr {}, momentum {}, "
                 "Newton-Schulz in {}), AdamW at lr {} for the rest; schedule {}",
                 c.optim.muon_lr, c.optim.muon_momentum, enum_name(precision_.precision),
                 c.optim.lr, enum_name(c.schedule.decay));
  else
    spdlog::info("optimizer adamw at lr {}; schedule {}", c.optim.lr, enum_name(c.schedule.decay));
  spdlog::info("run directory: {}", run_dir);
}

nlohmann::json Progress::step(int64_t iter, float lr, const StepResult& r, double ms) {
  const double tokens_per_s = double(r.tokens) / ms * 1e3;
  const bool several = processes_ > 1;
  nlohmann::json line{{"iter", iter},
                      {"loss", r.loss},
                      {"lr", lr},
                      {"grad_norm", r.grad_norm},
                      {"ms", ms},
                      {"tokens_per_s", tokens_per_s},
                      {"global_batch", global_batch()}};
  if (several) line["reduce_ms"] = r.reduce_ms;
  const double median_ms = median_of(recent_ms_, ms);
  const double gflops = median_of(recent_gflops_, r.flops / ms * 1e-6);
  if (iter % config_.train.log_interval == 0) {
    // The peak was measured once, at start-up, under whatever load there was: a figure above
    // it says the measurement was low, not that the step beat the hardware, so none is shown.
    const double mfu = 100 * gflops / peak_gflops_;
    spdlog::info(
        "iter {:>6} | loss {:.4f} | lr {:.2e} | grad norm {:.3f} | {:.1f} ms{} | "
        "{:.1f}k tok/s | {:.0f} GFLOP/s{} | ETA {}",
        iter, r.loss, lr, r.grad_norm, ms,
        several ? fmt::format(" ({:.1f} reducing)", r.reduce_ms) : std::string(),
        tokens_per_s / 1e3, gflops, mfu <= 100 ? fmt::format(" ({:.0f}% MFU)", mfu) : std::string(),
        duration_text(double(config_.train.max_iters - iter - 1) * median_ms * 1e-3));
  }
  return line;
}

}  // namespace qkv::train
