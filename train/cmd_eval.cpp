// `qkv eval`: loss, bits per character and accuracy of a checkpoint on its data or another file;
// for an encoder_decoder also the exact-match accuracy of decoded outputs.
#include <cmath>
#include <cstdio>
#include <memory>

#include "commands.h"
#include "qkv/cost.h"
#include "qkv/data/pair_dataset.h"
#include "qkv/error.h"
#include "qkv/generate.h"
#include "qkv/inspect/exact_match.h"
#include "qkv/io/checkpoint.h"
#include "qkv/load.h"
#include "qkv/nn/models.h"
#include "qkv/runtime.h"
#include "qkv/train/task.h"

namespace qkv::cli {

void add_eval(CLI::App& app, std::function<int()>& run, const Environment& env) {
  struct Args {
    std::string checkpoint, data;
    int64_t batches = 0, beam = 1;
    double length_penalty = generate::BeamOptions{}.length_penalty;
    int threads = 0;
    std::string precision = "auto";
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "eval", "Evaluate a checkpoint: loss, bits per character and accuracy on train and val");
  cmd->add_option("checkpoint", a->checkpoint, "Run directory or checkpoint directory")->required();
  cmd->add_option(
      "--data", a->data,
      "Evaluate on this file instead of the run's data.path (split by data.val_fraction)");
  cmd->add_option("--batches", a->batches,
                  "Batches per split (default: the run's train.eval_iters)")
      ->check(at_least(1));
  cmd->add_option("--beam", a->beam,
                  fmt::format("encoder_decoder: beam width of the exact-match decoding, 1 to {} "
                              "(default 1 = greedy)",
                              generate::kMaxBeam))
      ->check(between(1, generate::kMaxBeam));
  add_length_penalty_option(*cmd, a->length_penalty);
  cmd->add_option("--threads", a->threads, "Threads (0 = all cores)")->check(at_least(0));
  add_precision_option(*cmd, a->precision);
  on_run(*cmd, run, [a, env]() -> int {
    set_num_threads(a->threads);
    std::vector<std::string> overrides;
    if (!a->data.empty()) overrides.push_back("data.path=" + a->data);
    const Precision precision = chosen_precision(a->precision, env);
    load::LoadedModel m = load::load_model(a->checkpoint, {.overrides = overrides});
    const std::string dir = m.dir;
    const io::Config config = m.config;
    const bool encoder_decoder = config.model.kind == nn::ModelKind::encoder_decoder;
    QKV_CHECK(a->beam == 1 || encoder_decoder,
              "--beam is for encoder_decoder models; this checkpoint's model.kind is {}",
              enum_name(config.model.kind));
    cost::check_generation_fits(m.model_config, a->beam, config.model.block_size,
                                fmt::format("--beam {}", a->beam));
    auto task = train::make_task(config, std::move(m), precision);
    const int64_t batches = a->batches > 0 ? a->batches : config.train.eval_iters;
    std::printf("checkpoint %s (step %lld), data %s, %lld batches of %lld\n", dir.c_str(),
                static_cast<long long>(io::checkpoint_step(dir)), config.data.path.front().c_str(),
                static_cast<long long>(batches), static_cast<long long>(config.train.batch_size));
    for (auto split : {data::Split::train, data::Split::val}) {
      Rng rng(static_cast<uint64_t>(config.train.seed), 4);
      const train::EvalResult r = task->evaluate(split, batches, rng);
      std::printf("%-5s loss %.4f  bits/char %.4f  accuracy %.2f%%\n", data::split_name(split),
                  r.loss, r.loss / std::log(2.0), 100.0 * r.accuracy);
    }
    if (encoder_decoder) {
      // A --data file is a held-out set: all of it counts. The run's own data: its val split.
      const data::PairDataset pairs = data::PairDataset::load(
          config.data.path.front(), {.val_fraction = config.data.val_fraction,
                                     .block_size = config.model.block_size,
                                     .vocab = task->vocab(),
                                     .corpus = train::corpus_options(config, true)});
      std::vector<data::Split> splits{data::Split::val};
      if (!a->data.empty()) splits.insert(splits.begin(), data::Split::train);
      const inspect::ExactMatch m =
          inspect::exact_match(dynamic_cast<nn::EncoderDecoderModel&>(task->model()), pairs, splits,
                               {.search = {.beam = a->beam, .length_penalty = a->length_penalty}});
      fmt::print("exact match {:.2f}% ({} of {}, {}, {})\n", 100.0 * m.accuracy(), m.correct,
                 m.total, a->data.empty() ? "val split" : "whole file",
                 a->beam == 1
                     ? std::string("greedy")
                     : fmt::format("beam {}, length penalty {}", a->beam, a->length_penalty));
    }
    return 0;
  });
}

}  // namespace qkv::cli
