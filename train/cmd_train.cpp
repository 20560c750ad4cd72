// `qkv train`: a new run from a config, a resumed run, or a new run from another's weights.
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <iostream>
#include <memory>

#include "commands.h"
#include "qkv/io/checkpoint.h"
#include "qkv/io/config.h"
#include "qkv/load.h"
#include "qkv/parallel/distributed.h"
#include "qkv/train/trainer.h"

namespace qkv::cli {
namespace {

// First Ctrl-C (or SIGTERM): finish the step, save, exit (while starting: exit before writing
// anything). Second: leave at once; checkpoints are written atomically, so nothing on disk is
// left half-written. A signal handler can only reach globals: these two are the stop request
// (the trainer's, and the process group's, which bounds any wait for the other processes by it)
// and whether this process says so (under mpirun every process gets the signal, and rank 0
// alone speaks).
std::atomic<bool> g_stop_requested{false};
volatile std::sig_atomic_t g_announce_stop = 1;

void on_signal(int) {
  if (g_stop_requested.exchange(true)) _exit(130);
  const char msg[] = "\nstopping after this step and saving a checkpoint (Ctrl-C again to abort)\n";
  if (g_announce_stop) [[maybe_unused]]
    auto n = write(STDERR_FILENO, msg, sizeof msg - 1);
}

io::Config dump_config(const train::TrainOptions& o) {
  train::check_options(o);
  if (o.resume.empty()) return io::load_config(o.config_path, o.overrides);
  const std::string dir = io::resolve_checkpoint(o.resume);
  return load::checkpoint_config(io::load_checkpoint(dir, false), dir, o.overrides);
}

}  // namespace

void add_train(CLI::App& app, std::function<int()>& run, const Environment& env,
               const parallel::Distributed*& group) {
  auto opts = std::make_shared<train::TrainOptions>();
  auto out = std::make_shared<std::string>();
  auto threads = std::make_shared<int>(-1);
  auto dump = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("train", "Train a model from a config file, or resume a run");
  // No CLI::ExistingFile check: the config loader's message names the file in the usual form.
  cmd->add_option("config", opts->config_path, "TOML config file (see docs/config.md)");
  cmd->add_option("--set", opts->overrides,
                  "Override a config key, e.g. --set train.max_iters=500 (repeatable)")
      ->type_name("KEY=VALUE");
  cmd->add_option("--out", *out, "Run directory (same as --set train.out_dir=DIR)");
  cmd->add_option("--threads", *threads, "Threads for OpenMP and OpenBLAS (0 = all cores)")
      ->check(at_least(0));
  cmd->add_option("--resume", opts->resume,
                  "Continue a run: RUN_DIR (its latest checkpoint) or RUN_DIR/checkpoint-N");
  cmd->add_option("--init-from", opts->init_from,
                  "Start a new run from this checkpoint's weights (fine-tuning)");
  cmd->add_flag("--allow-data-change", opts->allow_data_change,
                "With --resume: accept a training text that differs from the checkpoint's");
  cmd->add_flag("--dump-config", *dump, "Print the resolved config and exit");
  on_run(*cmd, run, [&env, &group, opts, out, threads, dump]() -> int {
    if (!out->empty()) opts->overrides.push_back("train.out_dir=" + *out);
    if (*threads >= 0) opts->overrides.push_back("train.threads=" + std::to_string(*threads));
    if (*dump) {
      std::cout << io::to_toml(dump_config(*opts));
      return 0;
    }
    group = &parallel::join_launched_processes(env, g_stop_requested);
    g_announce_stop = group->writes();
    // Before anything starts, so that a Ctrl-C while starting stops cleanly too.
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    train::Trainer trainer(*opts, *group, env);
    return trainer.run(g_stop_requested) ? 0 : 130;
  });
}

}  // namespace qkv::cli
