// Interrupting `qkv train`: Ctrl-C saves a checkpoint and says how to resume; kill -9 at any
// moment (even in the middle of a save) leaves `latest` naming a complete checkpoint, and the
// resumed run ends with the same losses as a run never interrupted.
#include <doctest/doctest.h>

#include <regex>

#include "qkv/rng.h"
#include "qkv_cli.h"

using namespace qkv::testing;

namespace {

std::vector<int64_t> range(int64_t n) {
  std::vector<int64_t> v(size_t(n), 0);
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = i;
  return v;
}

}  // namespace

TEST_CASE("qkv train: Ctrl-C saves a checkpoint, says where and how to resume, exits 130") {
  TempDir dir("cli_sigint");
  const std::string data = dir.write("corpus.txt", generated_corpus(1000));
  const fs::path run = dir.path() / "run";
  Process train({kQkv, "train", kTinyConfig, "--set", "data.path=" + data, "--set",
                 "train.max_iters=1000000", "--out", run.string(), "--threads", "1"});
  REQUIRE_MESSAGE(wait_until(train, [&] { return count_lines(run / "metrics.jsonl") >= 20; }),
                  train.wait().err);
  train.send(SIGINT);
  const CommandResult r = train.wait();
  CHECK(r.exit_code == 130);
  CHECK(r.err.find("stopping after this step") != std::string::npos);
  std::smatch m;
  REQUIRE_MESSAGE(
      std::regex_search(r.err, m, std::regex(R"(stopped after iter (\d+); saved (\S+);)")), r.err);
  const int64_t step = std::stoll(m[1]) + 1;
  const fs::path checkpoint = run / ("checkpoint-" + std::to_string(step));
  CHECK(m[2] == checkpoint.string());
  CHECK(r.err.find("qkv train --resume " + run.string()) != std::string::npos);
  CHECK(latest_step(run) == step);

  const CommandResult info = run_qkv({"info", run.string()});
  REQUIRE_MESSAGE(info.exit_code == 0, info.err);
  CHECK(info.out.find(checkpoint.string() + " (verified") != std::string::npos);
  CHECK(std::regex_search(info.out, std::regex("step +" + std::to_string(step) + " ")));

  const CommandResult resume = run_qkv(
      {"train", "--resume", run.string(), "--set", "train.max_iters=" + std::to_string(step + 3)});
  REQUIRE_MESSAGE(resume.exit_code == 0, resume.err);
  CHECK(resume.err.find("resuming from " + checkpoint.string()) != std::string::npos);
  CHECK(read_metrics(run).iters == range(step + 3));
}

TEST_CASE("qkv train: a long evaluation says how far it is, and one Ctrl-C stops it") {
  TempDir dir("cli_sigint_eval");
  const std::string data = dir.write("corpus.txt", generated_corpus(1000));
  const fs::path run = dir.path() / "run";
  Process train({kQkv, "train", kTinyConfig, "--set", "data.path=" + data, "--set",
                 "train.eval_iters=100000000", "--out", run.string(), "--threads", "1"});
  REQUIRE_MESSAGE(wait_until(train,
                             [&] {
                               return read_file(train.err_path())
                                          .find("evaluating the train split: ") !=
                                      std::string::npos;
                             }),
                  train.wait().err);
  train.send(SIGINT);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (train.running() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE_FALSE(train.running());
  const CommandResult r = train.wait();
  CHECK(r.exit_code == 130);
  CHECK(std::regex_search(r.err, std::regex(R"(evaluating the train split: \d+ of 100000000 )"
                                            R"(batches, about \d+ s left)")));
  CHECK_MESSAGE(r.err.find("stopped while evaluating at iter 0; saved " +
                           (run / "checkpoint-0").string() + "; continue with `qkv train "
                           "--resume " + run.string() + "`") != std::string::npos,
                r.err);
  CHECK(read_metrics(run).val_loss.empty());

  // The evaluation that was cut short is made again on resume.
  const CommandResult resume =
      run_qkv({"train", "--resume", run.string(), "--set", "train.eval_iters=2", "--set",
               "train.max_iters=2", "--threads", "1"});
  REQUIRE_MESSAGE(resume.exit_code == 0, resume.err);
  CHECK(read_metrics(run).eval_iters == std::vector<int64_t>{0, 2});
}

TEST_CASE("qkv train: a second Ctrl-C exits at once and leaves the checkpoints intact") {
  TempDir dir("cli_sigint_twice");
  const std::string data = dir.write("corpus.txt", generated_corpus(1000));
  const fs::path run = dir.path() / "run";
  Process train({kQkv, "train", kTinyConfig, "--set", "data.path=" + data, "--set",
                 "train.max_iters=1000000", "--set", "train.checkpoint_interval=3", "--out",
                 run.string(), "--threads", "1"});
  REQUIRE_MESSAGE(wait_until(train, [&] { return latest_step(run) >= 3; }), train.wait().err);
  train.send(SIGINT);
  train.send(SIGINT);
  CHECK(train.wait().exit_code == 130);
  const CommandResult info = run_qkv({"info", run.string()});
  CHECK_MESSAGE(info.exit_code == 0, info.err);
  CHECK(run_qkv({"train", "--resume", run.string(), "--set",
                 "train.max_iters=" + std::to_string(latest_step(run) + 1)})
            .exit_code == 0);
}

TEST_CASE("qkv train: kill -9 at random moments never breaks latest; resume ends bit-exact") {
  TempDir dir("cli_sigkill");
  const std::string data = dir.write("corpus.txt", generated_corpus(1000));
  const fs::path run = dir.path() / "run", reference = dir.path() / "reference";
  // A save every step, so kills land in saves (with fsync a save takes longer than a step);
  // dropout, so the dropout RNG must resume too; evaluations every 10 steps, so none may be lost
  // or repeated.
  const int64_t max_iters = 40;
  const std::vector<std::string> settings{"train.max_iters=" + std::to_string(max_iters),
                                          "train.checkpoint_interval=1", "train.eval_interval=10",
                                          "model.dropout=0.1"};
  std::vector<std::string> start_run{kQkv};
  for (const std::string& a : train_args(data, run, settings)) start_run.push_back(a);

  qkv::Rng rng(2024);  // the kill moments: random, but the same on every run of the test
  int kills = 0;
  for (int round = 0; round < 10; ++round) {
    CAPTURE(round);
    const int64_t before = latest_step(run);
    Process train(round == 0 ? start_run
                             : std::vector<std::string>{kQkv, "train", "--resume", run.string()});
    // Once a new checkpoint appears the process is in its loop of steps and saves.
    if (wait_until(train, [&] { return latest_step(run) > before; }))
      std::this_thread::sleep_for(std::chrono::microseconds(rng.below(30000)));
    train.send(SIGKILL);  // a no-op when it has ended
    const CommandResult r = train.wait();
    if (r.exit_code == 0) break;  // it finished before the kill
    REQUIRE_MESSAGE(r.exit_code == 128 + SIGKILL, r.err);
    ++kills;
    const CommandResult info = run_qkv({"info", run.string()});
    REQUIRE_MESSAGE(info.exit_code == 0, info.err);
    CHECK(info.out.find("(verified against its manifest)") != std::string::npos);
  }
  CHECK(kills >= 5);
  const CommandResult resume = run_qkv({"train", "--resume", run.string()});
  REQUIRE_MESSAGE(resume.exit_code == 0, resume.err);
  CHECK(latest_step(run) == max_iters);

  // The reference saves only at the end: saving must not change training either.
  std::vector<std::string> reference_settings = settings;
  reference_settings.push_back("train.checkpoint_interval=1000");
  const CommandResult straight = run_qkv(train_args(data, reference, reference_settings));
  REQUIRE_MESSAGE(straight.exit_code == 0, straight.err);
  const Metrics a = read_metrics(reference), b = read_metrics(run);
  REQUIRE(a.iters == range(max_iters));
  CHECK(b.iters == a.iters);
  CHECK(b.loss == a.loss);
  CHECK(b.eval_iters == a.eval_iters);
  CHECK(b.val_loss == a.val_loss);
  CHECK(pointer_step(reference, "best") > 0);
  CHECK(pointer_step(run, "best") == pointer_step(reference, "best"));
}
