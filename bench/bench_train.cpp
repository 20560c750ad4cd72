// Training-step benchmark: the step of `qkv train` (qkv::train::optimisation_step) on a config,
// timed over --iters iterations after --warmup, at the config's train.precision. Prints the
// median ms/iter, tokens/s, nanoGPT's GFLOP/s and MFU against the fp32 and bf16 GEMM peaks
// measured in the same process, peak RSS, whether the timed steps asked the system for memory,
// and how many threads the process ran during the steps.
//
//   bench_train CONFIG CORPUS [--threads N] [--iters N] [--warmup N] [--set KEY=VALUE ...]
//               [--profile STEPS]
//   e.g. bench_train configs/shakespeare_char.toml ../shared/data/tinyshakespeare.txt --threads 2
#include <cblas.h>
#include <fmt/format.h>
#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "op_profile.h"
#include "qkv/allocator.h"
#include "qkv/error.h"
#include "qkv/io/config.h"
#include "qkv/optim/optimizer.h"
#include "qkv/optim/schedule.h"
#include "qkv/runtime.h"
#include "qkv/train/step.h"
#include "qkv/train/task.h"
#include "qkv/train/trainer.h"

namespace {

// This process only, as when started without a launcher.
const qkv::parallel::Distributed alone{};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Samples /proc/self/task while the steps run: the most threads that existed at once, and the
// most that were running or runnable (state R) at once, not counting the sampler itself.
class ThreadSampler {
 public:
  void start() {
    thread_ = std::thread([this] {
      const pid_t self = static_cast<pid_t>(gettid());
      while (!stop_) {
        int total = 0, running = 0;
        std::error_code ec;
        for (const auto& e : std::filesystem::directory_iterator("/proc/self/task", ec)) {
          if (std::stoi(e.path().filename().string()) == self) continue;
          ++total;
          std::ifstream stat(e.path() / "stat");
          std::string line;
          std::getline(stat, line);
          const size_t paren = line.rfind(')');  // the state follows the command name
          if (paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'R')
            ++running;
        }
        max_total_ = std::max(max_total_.load(), total);
        max_running_ = std::max(max_running_.load(), running);
        ++samples_;
        std::this_thread::sleep_for(std::chrono::microseconds(500));
      }
    });
    // Under SCHED_FIFO (compare.sh --rt) the step's threads, of the same policy and priority,
    // would keep the sampler off both cores until the steps end: it samples one level above.
    int policy = 0;
    sched_param param{};
    pthread_getschedparam(pthread_self(), &policy, &param);
    if (policy == SCHED_FIFO || policy == SCHED_RR) {
      ++param.sched_priority;
      pthread_setschedparam(thread_.native_handle(), policy, &param);
    }
  }
  void stop() {
    stop_ = true;
    thread_.join();
  }
  int max_total() const { return max_total_; }
  int max_running() const { return max_running_; }
  int samples() const { return samples_; }

 private:
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> max_total_{0}, max_running_{0}, samples_{0};
};

}  // namespace

extern "C" int openblas_get_num_threads(void);
extern "C" int openblas_get_parallel(void);

int main(int argc, char** argv) {
  qkv::select_blas_kernel(argv);
  spdlog::set_level(spdlog::level::warn);
  CLI::App app{"Times the training step of `qkv train` on a config"};
  std::string config_path, corpus;
  int threads = 0, iters = 20, warmup = 5;
  std::vector<std::string> overrides;
  app.add_option("config", config_path, "TOML config")->required()->check(CLI::ExistingFile);
  app.add_option("corpus", corpus, "training text (data.path)")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--threads", threads, "threads for OpenMP and OpenBLAS (0 = all cores)");
  app.add_option("--iters", iters, "timed iterations")->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup, "untimed iterations first")->check(CLI::NonNegativeNumber);
  app.add_option("--set", overrides, "override a config key (repeatable)");
  int profile_steps = 0;
  app.add_option("--profile", profile_steps,
                 "after the timed steps, run this many more with per-op and per-phase timing");
  CLI11_PARSE(app, argc, argv);

  try {
    overrides.push_back("data.path=" + corpus);
    const qkv::io::Config c = qkv::io::load_config(config_path, overrides);
    qkv::set_num_threads(threads);
    const qkv::PrecisionChoice precision = qkv::choose_precision(
        c.train.precision, "train.precision", qkv::bf16_support(std::getenv("QKV_CPU_BF16")));
    auto task = qkv::train::make_task(c, std::nullopt, precision.precision);
    qkv::nn::Module& model = task->model();
    const auto params = model.named_parameters();
    qkv::optim::Optimizer optimizer(params,
                                    qkv::train::optimizer_config(c, precision.precision));
    const qkv::optim::ScheduleConfig sched = qkv::train::schedule_config(c);
    qkv::optim::ExactGradSum grads(params);
    const auto seed = static_cast<uint64_t>(c.train.seed);

    const int64_t B = c.train.batch_size, T = c.model.block_size, C = c.model.n_embd;
    // GEMM peaks in both precisions (bf16 where the CPU has it), each the best of its runs, the
    // way qkv splits a GEMM over the threads: at 1024^3, and at the largest GEMM of a step, the
    // MLP's first linear, [B·T, C] x [C, 4C].
    using qkv::Precision;
    const bool has_bf16 = qkv::bf16_support(std::getenv("QKV_CPU_BF16")).usable;
    auto peak = [&](Precision p, int64_t M, int64_t N, int64_t K) {
      return p == Precision::bf16 && !has_bf16 ? 0.0 : qkv::measure_gemm_gflops(p, M, N, K, 15);
    };
    const double peak_f32 = peak(Precision::fp32, 1024, 1024, 1024);
    const double peak_bf16 = peak(Precision::bf16, 1024, 1024, 1024);
    const double shape_f32 = peak(Precision::fp32, B * T, 4 * C, C);
    const double shape_bf16 = peak(Precision::bf16, B * T, 4 * C, C);
    const double peak_run = precision.precision == Precision::bf16 ? peak_bf16 : peak_f32;

    fmt::print("{}\n", qkv::runtime_summary(qkv::read_environment()));
    fmt::print(
        "OpenMP max threads {}, OpenBLAS threads {} (parallel mode {}: 2 = OpenMP), "
        "OMP_NUM_THREADS={}, OPENBLAS_NUM_THREADS={}\n",
        omp_get_max_threads(), openblas_get_num_threads(), openblas_get_parallel(),
        std::getenv("OMP_NUM_THREADS") ? std::getenv("OMP_NUM_THREADS") : "unset",
        std::getenv("OPENBLAS_NUM_THREADS") ? std::getenv("OPENBLAS_NUM_THREADS") : "unset");
    fmt::print("config {}: L{} H{} C{} T{} B{}, {:.3f}M parameters; precision {} ({})\n",
               config_path, c.model.n_layer, c.model.n_head, C, T, B,
               double(model.num_parameters()) / 1e6, enum_name(precision.precision), precision.why);

    int64_t iter = 0;
    double last_loss = 0, flops = 0, tokens = 0;  // the timed steps' (Task::Prediction)
    bool timing = false;
    auto step = [&] {
      const auto r = qkv::train::optimisation_step(
          *task, optimizer, grads, alone, seed, iter, c.train.grad_accum,
          float(c.optim.grad_clip), qkv::optim::lr_at(iter, sched));
      ++iter;
      last_loss = r.loss;
      if (timing) flops += r.flops, tokens += double(r.tokens);
    };
    for (int i = 0; i < warmup; ++i) step();
    const int64_t allocs_before = qkv::allocator_stats().system_allocs;
    std::vector<double> ms, cpu_ms;
    auto cpu_now = [] {
      timespec ts{};
      clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
      return double(ts.tv_sec) * 1e3 + double(ts.tv_nsec) * 1e-6;
    };
    timing = true;
    for (int i = 0; i < iters; ++i) {
      const double c0 = cpu_now();
      const auto t0 = std::chrono::steady_clock::now();
      step();
      ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      cpu_ms.push_back(cpu_now() - c0);
    }
    timing = false;
    const int64_t allocs = qkv::allocator_stats().system_allocs - allocs_before;
    // Threads are counted over a few more, untimed steps: the sampler wakes every 0.5 ms, which
    // would preempt the timed steps' threads on a machine with no core to spare.
    ThreadSampler sampler;
    sampler.start();
    for (int i = 0; i < 3; ++i) step();
    sampler.stop();

    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    const double med = median(ms);
    // Per-step FLOPs and tokens are the timed steps' means (they vary with an encoder-decoder's
    // pair lengths), over the median step time.
    const double gflops = flops / double(iters) / (med * 1e-3) * 1e-9;
    fmt::print("steps: {} timed after {} warm-up; loss at the last step {:.4f}\n", iters, warmup,
               last_loss);
    fmt::print("median {:.2f} ms/iter (min {:.2f}, max {:.2f})\n", med,
               *std::min_element(ms.begin(), ms.end()), *std::max_element(ms.begin(), ms.end()));
    // On a shared machine the wall clock counts time spent descheduled; CPU time does not
    // (but counts threads spinning at barriers, so it only reads cleanly with one thread).
    fmt::print("median CPU time {:.2f} ms/iter (all threads of the process)\n", median(cpu_ms));
    fmt::print("tokens/s {:.0f}; {:.2f} GFLOP/iter (nanoGPT's count)\n",
               tokens / double(iters) / med * 1e3, flops / double(iters) * 1e-9);
    fmt::print("achieved {:.1f} GFLOP/s\n", gflops);
    auto mfu_line = [&](const char* name, double p1024, double pshape) {
      if (p1024 == 0) return fmt::print("{} GEMM peak: not measured (no AVX512_BF16)\n", name);
      fmt::print(
          "{} GEMM peak {:.1f} GFLOP/s at 1024^3 -> MFU {:.1f}%; {:.1f} GFLOP/s at "
          "{}x{}x{} -> {:.1f}%\n",
          name, p1024, 100 * gflops / p1024, pshape, B * T, 4 * C, C, 100 * gflops / pshape);
    };
    mfu_line("fp32", peak_f32, shape_f32);
    mfu_line("bf16", peak_bf16, shape_bf16);
    fmt::print("peak RSS {:.1f} MB\n", double(usage.ru_maxrss) / 1024.0);
    fmt::print("system allocations during the timed steps: {}\n", allocs);
    if (sampler.samples() == 0)
      fmt::print("threads during 3 more steps: not sampled (the sampler got no core)\n");
    else
      fmt::print(
          "threads during 3 more steps: at most {} existed, at most {} running at once "
          "(sampler excluded, {} samples; --threads {})\n",
          sampler.max_total(), sampler.max_running(), sampler.samples(), qkv::num_threads());
    fmt::print(
        "RESULT qkv ms_per_iter={:.3f} rss_mb={:.1f} mfu={:.4f} gflops={:.2f} precision={} "
        "peak_fp32={:.1f} peak_bf16={:.1f}\n",
        med, double(usage.ru_maxrss) / 1024.0, gflops / peak_run, gflops,
        enum_name(precision.precision), peak_f32, peak_bf16);
    if (profile_steps > 0) {
      // The same math as optimisation_step, phase by phase, with the op timer on.
      double fwd = 0, bwd = 0, clip = 0, update = 0, wall = 0;
      using Clock = std::chrono::steady_clock;
      auto ms_since = [](Clock::time_point t) {
        return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
      };
      qkv::op_profile::take();
      for (int i = 0; i < profile_steps; ++i) {
        const auto t0 = Clock::now();
        optimizer.zero_grad();
        qkv::op_profile::start();
        qkv::Rng data_rng = qkv::train::micro_batch_data_rng(seed, iter, 0);
        qkv::Rng dropout_rng = qkv::train::micro_batch_dropout_rng(seed, iter, 0);
        const auto p = task->predict(qkv::data::Split::train, data_rng, &dropout_rng);
        qkv::Tensor loss = qkv::softmax_cross_entropy(p.logits, p.targets);
        fwd += ms_since(t0);
        const auto t1 = Clock::now();
        loss.backward();
        qkv::op_profile::stop();
        bwd += ms_since(t1);
        const auto t2 = Clock::now();
        const float norm = qkv::optim::grad_norm(params);
        clip += ms_since(t2);
        const auto t3 = Clock::now();
        optimizer.step(qkv::optim::lr_at(iter++, sched),
                       qkv::optim::clip_factor(norm, float(c.optim.grad_clip)));
        update += ms_since(t3);
        wall += ms_since(t0);
      }
      const double n = profile_steps;
      fmt::print(
          "\nprofile over {} steps (ms per step): forward {:.2f}, backward {:.2f}, grad norm "
          "{:.2f}, {} (with the clip) {:.2f}, total {:.2f}\n",
          profile_steps, fwd / n, bwd / n, clip / n, qkv::enum_name(c.optim.kind), update / n,
          wall / n);
      fmt::print("{:<40} {:>8} {:>9} {:>9} {:>7}\n", "op", "calls", "fwd ms", "bwd ms", "% step");
      double fwd_ops = 0, bwd_ops = 0;
      for (const auto& e : qkv::op_profile::take()) {
        fwd_ops += e.forward_ms, bwd_ops += e.backward_ms;
        fmt::print("{:<40} {:>8.0f} {:>9.3f} {:>9.3f} {:>6.1f}%\n", e.op, double(e.calls) / n,
                   e.forward_ms / n, e.backward_ms / n,
                   100 * (e.forward_ms + e.backward_ms) / wall);
      }
      fmt::print("{:<40} {:>8} {:>9.3f} {:>9.3f} {:>6.1f}%\n", "(outside ops: data, engine)", "",
                 (fwd - fwd_ops) / n, (bwd - bwd_ops) / n,
                 100 * ((fwd - fwd_ops) + (bwd - bwd_ops)) / wall);
      fmt::print("{:<40} {:>8} {:>9.3f} {:>9} {:>6.1f}%\n", "grad norm + clip + optimizer", "",
                 (clip + update) / n, "", 100 * (clip + update) / wall);
    }
  } catch (const qkv::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
