// A run directory has one writer and is never a dead end: two `qkv train` on one directory (new
// or resumed) leave one running and refuse the other with its pid; a run that stopped before
// its first checkpoint starts again with the same command; Ctrl-C while starting writes
// nothing; a resume on a full disk changes nothing.
#include <doctest/doctest.h>
#include <signal.h>

#include <regex>
#include <sstream>

#include "qkv/io/checkpoint.h"
#include "qkv/io/config.h"
#include "qkv_cli.h"
#include "support/small_tmpfs.h"

using namespace qkv::testing;

namespace {

std::vector<std::string> qkv_command(const std::vector<std::string>& args) {
  std::vector<std::string> argv{kQkv};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

// Whether the process has installed a handler for SIGINT (its /proc status "SigCgt" mask).
bool catches_sigint(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.starts_with("SigCgt:")) return (std::stoull(line.substr(7), nullptr, 16) >> 1) & 1;
  return false;
}

std::vector<int64_t> range(int64_t n) {
  std::vector<int64_t> v(size_t(n), 0);
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = i;
  return v;
}

// Two `qkv train` started at once on one run directory: returns the results of the one refused
// (first) and of the one that trained, stopped with Ctrl-C once it has logged `lines` lines.
std::pair<CommandResult, CommandResult> race(const std::vector<std::string>& a,
                                             const std::vector<std::string>& b, const fs::path& run,
                                             size_t lines) {
  Process first(qkv_command(a)), second(qkv_command(b));
  const pid_t first_pid = first.pid(), second_pid = second.pid();
  // One of them ends at once; the other trains until stopped.
  while (first.running() && second.running())
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  Process& winner = first.running() ? first : second;
  Process& loser = first.running() ? second : first;
  const pid_t winner_pid = first.running() ? first_pid : second_pid;
  CommandResult refused = loser.wait();
  CHECK_MESSAGE(is_one_error_line(refused), refused.err);
  CHECK_MESSAGE(refused.err.starts_with("error: " + run.string() + ": another qkv train (pid " +
                                        std::to_string(winner_pid) + ") is writing to this run"),
                refused.err);
  REQUIRE_MESSAGE(wait_until(winner, [&] { return count_lines(run / "metrics.jsonl") >= lines; }),
                  winner.wait().err);
  winner.send(SIGINT);
  return {refused, winner.wait()};
}

}  // namespace

TEST_CASE("qkv train: two new runs into one directory at once: one trains, one is refused") {
  TempDir dir("cli_two_new_runs");
  const std::string data = dir.write("corpus.txt", generated_corpus(1000));
  const fs::path run = dir.path() / "run";
  const std::vector<std::string> forever{"train.max_iters=1000000",
                                         "train.checkpoint_interval=1000000"};
  std::vector<std::string> seed_1337 = forever, seed_7 = forever;
  seed_7.push_back("train.seed=7");
  const auto [refused, trained] =
      race(train_args(data, run, seed_1337), train_args(data, run, seed_7), run, 30);
  CHECK(trained.exit_code == 130);
  // Everything in the directory is the winner's: config.toml and the checkpoint agree.
  const auto checkpoint = qkv::io::parse_config(
      [&] {
        std::ifstream in(run / ("checkpoint-" + std::to_string(latest_step(run))) / "config.toml");
        return std::string(std::istreambuf_iterator<char>(in), {});
      }(),
      "checkpoint");
  std::ifstream in(run / "config.toml");
  const auto config =
      qkv::io::parse_config(std::string(std::istreambuf_iterator<char>(in), {}), "config.toml");
  CHECK(config.train.seed == checkpoint.train.seed);
  CHECK(read_metrics(run).iters == range(latest_step(run)));
}

TEST_CASE("qkv train --resume: two resumes of one run at once: one trains, none of its log lost") {
  TempDir dir("cli_two_resumes");
  const std::string data = dir.write("corpus.txt", generated_corpus(1000));
  const fs::path run = dir.path() / "run";
  const CommandResult first = run_qkv(train_args(data, run, {"train.max_iters=20"}));
  REQUIRE_MESSAGE(first.exit_code == 0, first.err);
  const std::vector<std::string> resume{"train", "--resume", run.string(), "--set",
                                        "train.max_iters=1000000"};
  const auto [refused, trained] = race(resume, resume, run, 80);
  CHECK(trained.exit_code == 130);
  const int64_t step = latest_step(run);
  CHECK(step > 20);
  CHECK(read_metrics(run).iters == range(step));
  const CommandResult info = run_qkv({"info", run.string()});
  CHECK_MESSAGE(info.exit_code == 0, info.err);
}

TEST_CASE("qkv train --resume: a run still before its first checkpoint is named as busy") {
  TempDir dir("cli_resume_while_starting");
  const std::string data = dir.write("corpus.txt", generated_corpus(1000));
  const fs::path run = dir.path() / "run";
  Process running(qkv_command(
      train_args(data, run, {"train.max_iters=1000000", "train.checkpoint_interval=1000000"})));
  REQUIRE(wait_until(running, [&] { return count_lines(run / "metrics.jsonl") >= 5; }));
  const CommandResult resumed = run_qkv({"train", "--resume", run.string()});
  CHECK(resumed.exit_code == 1);
  CHECK_MESSAGE(resumed.err.starts_with("error: " + run.string() + ": another qkv train (pid " +
                                        std::to_string(running.pid()) + ") is writing"),
                resumed.err);
  running.send(SIGINT);
  CHECK(running.wait().exit_code == 130);
}

TEST_CASE(
    "qkv train: a run killed before its first checkpoint starts again with the same command") {
  TempDir dir("cli_restart_without_checkpoint");
  const std::string data = dir.write("corpus.txt", generated_corpus(1000));
  const fs::path run = dir.path() / "run";
  const std::vector<std::string> args =
      train_args(data, run, {"train.max_iters=40", "train.checkpoint_interval=1000"});
  {
    Process killed(qkv_command(
        train_args(data, run, {"train.max_iters=1000000", "train.checkpoint_interval=1000000"})));
    REQUIRE(wait_until(killed, [&] { return count_lines(run / "metrics.jsonl") >= 10; }));
    killed.send(SIGKILL);
    REQUIRE(killed.wait().exit_code == 128 + SIGKILL);
  }
  REQUIRE_FALSE(qkv::io::holds_checkpoint(run.string()));
  const CommandResult again = run_qkv(args);
  REQUIRE_MESSAGE(again.exit_code == 0, again.err);
  CHECK(again.err.find(run.string() + " holds a run that stopped before its first checkpoint: "
                                      "starting it again") != std::string::npos);
  CHECK(read_metrics(run).iters == range(40));
  CHECK(read_metrics(run).eval_iters == std::vector<int64_t>{0, 40});
  CHECK(latest_step(run) == 40);

  // Once it has a checkpoint, the same command is refused: that run is continued with --resume.
  const Snapshot before = snapshot(run);
  const CommandResult refused = run_qkv(args);
  CHECK(is_one_error_line(refused));
  CHECK_MESSAGE(refused.err.find("already holds a run with checkpoints; continue it with `qkv "
                                 "train --resume " +
                                 run.string() + "`") != std::string::npos,
                refused.err);
  CHECK(snapshot(run) == before);
}

TEST_CASE("qkv train: the command a run without checkpoint suggests starts it again") {
  TempDir dir("cli_suggested_restart");
  const std::string data = dir.write("corpus.txt", generated_corpus(1000));
  const fs::path run = dir.path() / "run";
  {
    Process killed(qkv_command(
        train_args(data, run, {"train.max_iters=1000000", "train.checkpoint_interval=1000000"})));
    REQUIRE(wait_until(killed, [&] { return count_lines(run / "metrics.jsonl") >= 10; }));
    killed.send(SIGKILL);
  }
  const CommandResult resume = run_qkv({"train", "--resume", run.string()});
  CHECK(is_one_error_line(resume));
  std::smatch m;
  REQUIRE_MESSAGE(std::regex_search(resume.err, m, std::regex("start it again with `qkv (.*)`")),
                  resume.err);
  std::vector<std::string> args;
  std::istringstream words(m[1].str());
  for (std::string w; words >> w;) args.push_back(w);
  args.insert(args.end(), {"--set", "train.max_iters=3"});
  const CommandResult again = run_qkv(args);
  CHECK_MESSAGE(again.exit_code == 0, again.err);
  CHECK(latest_step(run) == 3);
}

TEST_CASE("qkv train: a loss that diverges before the first checkpoint says so and leaves no dead end") {
  TempDir dir("cli_nan_before_checkpoint");
  const std::string data = dir.write("corpus.txt", generated_corpus(1000));
  const fs::path run = dir.path() / "run";
  const CommandResult diverged =
      run_qkv(train_args(data, run, {"optim.lr=1e30", "optim.weight_decay=0"}));
  CHECK(diverged.exit_code == 1);  // after the start-up log on stderr
  CHECK_MESSAGE(std::regex_search(diverged.err,
                                  std::regex("error: training loss became (-?nan|-?inf) at iter 1; "
                                             "it was [0-9.]+ at iter 0, so the updates diverged: "
                                             "a lower optim.lr \\(the peak is 1e\\+30\\)")),
                diverged.err);
  CHECK_MESSAGE(diverged.err.ends_with("the weights were not saved; no checkpoint was saved, so "
                                       "`qkv train` into " + run.string() + " starts it again\n"),
                diverged.err);
  const CommandResult again = run_qkv(train_args(data, run, {"train.max_iters=3"}));
  CHECK_MESSAGE(again.exit_code == 0, again.err);
  CHECK(read_metrics(run).iters == range(3));

  // With Muon, its own rate is the other suspect.
  const CommandResult muon = run_qkv(train_args(
      data, dir.path() / "muon", {"optim.kind=muon", "optim.muon_lr=1e30"}));
  CHECK(muon.exit_code == 1);
  CHECK_MESSAGE(muon.err.find("so the updates diverged: a lower optim.lr (the peak is 0.003), a "
                              "lower optim.muon_lr (it is 1e+30) or optim.grad_clip") !=
                    std::string::npos,
                muon.err);
}

TEST_CASE("qkv train: a loss that diverges after a checkpoint names it") {
  TempDir dir("cli_nan_after_checkpoint");
  const std::string data = dir.write("corpus.txt", generated_corpus(1000));
  const fs::path run = dir.path() / "run";
  const CommandResult diverged =
      run_qkv(train_args(
          data, run, {"optim.lr=1e30", "optim.weight_decay=0", "train.checkpoint_interval=1"}));
  CHECK(diverged.exit_code == 1);
  CHECK_MESSAGE(diverged.err.ends_with("the last checkpoint is " + (run / "checkpoint-1").string() +
                                       "; continue from it with `qkv train --resume " +
                                       run.string() + "`\n"),
                diverged.err);
}

TEST_CASE("qkv train: Ctrl-C while starting writes nothing and exits 130") {
  TempDir dir("cli_sigint_at_start");
  // A corpus big enough that start-up (reading it) outlasts the poll below.
  const std::string data = dir.write("corpus.txt", generated_corpus(200000));
  const fs::path run = dir.path() / "run";
  Process train(qkv_command(train_args(data, run, {"train.max_iters=1000000"})));
  REQUIRE(wait_until(train, [&] { return catches_sigint(train.pid()); }));
  train.send(SIGINT);
  const CommandResult r = train.wait();
  CHECK(r.exit_code == 130);
  CHECK_MESSAGE(
      r.err.find("stopped before training began; nothing was written") != std::string::npos, r.err);
  CHECK_FALSE(fs::exists(run));
}

TEST_CASE("qkv train CONFIG --resume RUN: refused, since a resumed run keeps its own config") {
  TempDir dir("cli_config_and_resume");
  const std::string data = dir.write("corpus.txt", generated_corpus(300));
  const fs::path run = dir.path() / "run";
  REQUIRE(run_qkv(train_args(data, run, {"train.max_iters=2"})).exit_code == 0);
  const Snapshot before = snapshot(dir.path());
  for (const std::vector<std::string>& extra :
       {std::vector<std::string>{}, std::vector<std::string>{"--dump-config"}}) {
    std::vector<std::string> args{"train", kTinyConfig, "--resume", run.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    const CommandResult r = run_qkv(args);
    CHECK(is_one_error_line(r));
    CHECK_MESSAGE(r.err.starts_with("error: qkv train " + kTinyConfig + " --resume " +
                                    run.string() + ": give a config or --resume, not both"),
                  r.err);
  }
  CHECK(snapshot(dir.path()) == before);
}

TEST_CASE("qkv train --resume: a full disk is one error naming the file; the run is untouched") {
  SmallTmpfs disk("cli_full_disk", 4 << 20);
  if (!disk.usable()) return;
  TempDir dir("cli_full_disk_data");
  const std::string data = dir.write("corpus.txt", generated_corpus(1000));
  const fs::path run = disk.path() / "run";
  const CommandResult trained = run_qkv(train_args(
      data, run, {"train.max_iters=80", "train.checkpoint_interval=40", "train.keep_last=5"}));
  REQUIRE_MESSAGE(trained.exit_code == 0, trained.err);
  disk.fill();
  const Snapshot before = snapshot(run);
  // From the earlier checkpoint: the log has 40 iterations to drop, so it must be rewritten.
  const CommandResult r = run_qkv({"train", "--resume", (run / "checkpoint-40").string()});
  CHECK_MESSAGE(is_one_error_line(r), r.err);
  CHECK_MESSAGE(r.err.find(": No space left on device") != std::string::npos, r.err);
  CHECK(std::regex_search(r.err, std::regex("error: " + run.string() + "/[a-z.]+: cannot")));
  CHECK(snapshot(run) == before);
  CHECK(read_metrics(run).iters == range(80));
}
