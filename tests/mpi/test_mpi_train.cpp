// `mpirun -np N qkv train` (built only when CMake found MPI): a step gives the same bits at any
// scale, rank 0 alone writes the run, and a checkpoint saved at one scale resumes at another.
#include <doctest/doctest.h>

#include <string>
#include <tuple>
#include <vector>

#include <fmt/format.h>

#include "mpi/mpirun.h"

using namespace qkv::testing;

namespace {

// A new run of the tiny config on `processes` (1: started alone, without mpirun).
CommandResult train(int processes, const std::string& data, const fs::path& run,
                    std::vector<std::string> settings) {
  const std::vector<std::string> args = train_args(data, run, settings);
  return processes == 1 ? run_qkv(args) : mpirun(processes, args);
}

CommandResult resume(int processes, const fs::path& run, int64_t max_iters) {
  const std::vector<std::string> args{"train", "--resume", run.string(), "--threads", "1",
                                      "--set", "train.max_iters=" + std::to_string(max_iters)};
  return processes == 1 ? run_qkv(args) : mpirun(processes, args);
}

std::string weights(const fs::path& run, int64_t step) {
  return qkv::data::sha256_file_hex(
      (run / ("checkpoint-" + std::to_string(step)) / "model.safetensors").string());
}

}  // namespace

TEST_CASE("mpirun qkv train: 1 × grad_accum 4, 2 ranks × 2 and 4 ranks × 1 give the same bits") {
  TempDir dir("mpi_scales");
  const std::string text = dir.write("corpus.txt", generated_corpus(600));
  const std::string pairs = dir.write("pairs.tsv", generated_pairs(300));
  // Muon orthogonalises the exactly summed gradient on every rank: the same bits too, in both
  // stacks of an encoder-decoder (attn.qkv split in 3, cross_attn.kv in 2).
  for (const auto& [kind, data, optimizer] :
       {std::tuple{"decoder", text, "adamw"}, std::tuple{"encoder", text, "adamw"},
        std::tuple{"encoder_decoder", pairs, "adamw"},
        std::tuple{"encoder_decoder", pairs, "muon"}}) {
    CAPTURE(kind);
    CAPTURE(optimizer);
    auto settings = [&](int grad_accum) {
      return std::vector<std::string>{std::string("model.kind=") + kind, "model.dropout=0.1",
                                      std::string("optim.kind=") + optimizer,
                                      "train.max_iters=3", "train.eval_interval=3",
                                      "train.eval_iters=3",
                                      "train.grad_accum=" + std::to_string(grad_accum)};
    };
    const std::string label = std::string(kind) + "-" + optimizer;
    const fs::path one = dir.path() / (label + "-1x4");
    REQUIRE(train(1, data, one, settings(4)).exit_code == 0);
    const Metrics reference = read_metrics(one);
    REQUIRE(reference.loss.size() == 3);
    // 2 × 2 reduces in buckets of 6250 elements during the backward (the tiny model has 30,000
    // or so), 4 × 1 in one bucket, after the backward, and 2 × 2 again without overlap.
    for (const auto& [processes, grad_accum, reduce] :
         {std::tuple{2, 2, "train.bucket_mb=0.05"}, std::tuple{4, 1, "train.overlap=true"},
          std::tuple{2, 2, "train.overlap=false"}}) {
      CAPTURE(processes);
      CAPTURE(reduce);
      const fs::path run = dir.path() / fmt::format("{}-{}x{}-{}", label, processes, grad_accum,
                                                    std::string(reduce).substr(6));
      auto set = settings(grad_accum);
      set.push_back(reduce);
      const CommandResult r = train(processes, data, run, set);
      REQUIRE_MESSAGE(r.exit_code == 0, r.err);
      CHECK(weights(run, 3) == weights(one, 3));
      // Rank 0 alone wrote metrics.jsonl: one line per step, the same losses as one process.
      const Metrics m = read_metrics(run);
      CHECK(m.loss == reference.loss);
      CHECK(m.val_loss == reference.val_loss);
      // The log gives the global batch: 4 micro-batches of 8 sequences.
      CHECK(r.err.find("global batch 32 sequences") != std::string::npos);
    }
  }
}

TEST_CASE("mpirun qkv train --resume: a checkpoint saved at 2 ranks goes on at 1 and 3, bit-exact") {
  TempDir dir("mpi_resume");
  const std::string data = dir.write("corpus.txt", generated_corpus(600));
  const std::vector<std::string> common{"model.dropout=0.1", "train.eval_interval=50",
                                        "train.eval_iters=3"};
  auto with = [&](std::vector<std::string> extra) {
    extra.insert(extra.begin(), common.begin(), common.end());
    return extra;
  };
  // 6 micro-batches per step: 1 × 6, 2 × 3 and 3 × 2.
  const fs::path straight = dir.path() / "straight";
  REQUIRE(train(1, data, straight, with({"train.grad_accum=6", "train.max_iters=4"})).exit_code ==
          0);
  const fs::path at1 = dir.path() / "at1", at3 = dir.path() / "at3";
  const CommandResult saved = train(2, data, at1, with({"train.grad_accum=3", "train.max_iters=2"}));
  REQUIRE_MESSAGE(saved.exit_code == 0, saved.err);
  fs::copy(at1, at3, fs::copy_options::recursive);
  REQUIRE(resume(1, at1, 4).exit_code == 0);
  const CommandResult r3 = resume(3, at3, 4);
  REQUIRE_MESSAGE(r3.exit_code == 0, r3.err);
  CHECK(weights(at1, 4) == weights(straight, 4));
  CHECK(weights(at3, 4) == weights(straight, 4));
  CHECK(read_metrics(at3).loss == read_metrics(straight).loss);

  // 4 processes cannot share 6 micro-batches: refused, with the reason, before any step.
  const CommandResult r4 = resume(4, at3, 6);
  CHECK(r4.exit_code != 0);
  CHECK(r4.err.find("6 micro-batches, which 4 processes cannot share evenly") !=
        std::string::npos);
  CHECK(latest_step(at3) == 4);
}

TEST_CASE("mpirun qkv train: a run directory that only rank 0 sees is read and written by it") {
  TempDir dir("mpi_rank0_dir");
  const std::string data = dir.write("corpus.txt", generated_corpus(600));
  const fs::path rank0 = dir.path() / "rank0", others = dir.path() / "others";
  fs::create_directories(rank0);
  fs::create_directories(others);
  // Rank 0 starts in rank0/, ranks 1 and 2 in others/: the relative run directory `run` is
  // then one they cannot see.
  auto launch = [&](const std::vector<std::string>& args) {
    std::vector<std::string> argv = mpirun_options();
    for (const auto& [processes, wdir] : {std::pair{"1", rank0}, std::pair{"2", others}}) {
      if (wdir == others) argv.push_back(":");
      argv.insert(argv.end(), {"-np", processes, "--wdir", wdir.string(), kQkv});
      argv.insert(argv.end(), args.begin(), args.end());
    }
    return run_command(argv);
  };
  const fs::path straight = dir.path() / "straight";
  REQUIRE(train(1, data, straight, {"train.grad_accum=3", "train.max_iters=4"}).exit_code == 0);
  const CommandResult started = launch(train_args(data, "run", {"train.max_iters=2"}));
  REQUIRE_MESSAGE(started.exit_code == 0, started.err);
  const CommandResult resumed =
      launch({"train", "--resume", "run", "--threads", "1", "--set", "train.max_iters=4"});
  REQUIRE_MESSAGE(resumed.exit_code == 0, resumed.err);
  CHECK(weights(rank0 / "run", 4) == weights(straight, 4));
  CHECK(fs::is_empty(others));
}
