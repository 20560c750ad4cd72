// A run through the command line: train, info, eval, resume; and an output path that cannot be
// created.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <regex>

#include "qkv/io/safetensors.h"
#include "qkv_cli.h"

using namespace qkv::testing;

namespace {

// The first number after `label` in text ("step         30 of ..." -> 30), or NaN.
double number_after(const std::string& text, const std::string& label) {
  std::smatch m;
  const std::regex re(label + R"(\s+([0-9.]+))");
  return std::regex_search(text, m, re) ? std::stod(m[1]) : NAN;
}

}  // namespace

TEST_CASE("qkv train, info, eval and train --resume: a run from start to resumed end") {
  TempDir dir("cli_run");
  const std::string data = dir.write("corpus.txt", generated_corpus(1000));
  const fs::path run = dir.path() / "run";

  const CommandResult train = run_qkv(train_args(data, run, {"train.max_iters=30"}));
  REQUIRE_MESSAGE(train.exit_code == 0, train.err);
  CHECK(train.err.find("eval iter 30") != std::string::npos);
  CHECK(latest_step(run) == 30);
  Metrics m = read_metrics(run);
  CHECK(m.iters.size() == 30);
  CHECK(m.eval_iters == std::vector<int64_t>{0, 30});
  CHECK(m.val_loss.back() < m.val_loss.front());

  const CommandResult info = run_qkv({"info", run.string()});
  REQUIRE_MESSAGE(info.exit_code == 0, info.err);
  CHECK(info.out.find((run / "checkpoint-30").string()) != std::string::npos);
  CHECK(info.out.find("verified") != std::string::npos);
  CHECK(info.out.find("optim        adamw lr") != std::string::npos);
  CHECK(info.out.find("model        decoder: 2 layers, 2 heads, 32 embd, block 16") !=
        std::string::npos);
  CHECK(number_after(info.out, "step") == 30);
  int64_t params = 0;
  for (const auto& [name, t] :
       qkv::io::read_safetensors((run / "checkpoint-30" / "model.safetensors").string()).tensors)
    params += t.numel();
  CHECK(number_after(info.out, "parameters") == double(params));
  CHECK(number_after(info.out, "best") == doctest::Approx(m.val_loss.back()).epsilon(1e-3));

  const CommandResult eval = run_qkv({"eval", run.string(), "--threads", "1"});
  REQUIRE_MESSAGE(eval.exit_code == 0, eval.err);
  for (const char* split : {"train", "val"}) {
    CAPTURE(split);
    const double loss = number_after(eval.out, std::string(split) + " +loss");
    const double bpc = number_after(eval.out, std::string(split) + " .*bits/char");
    // Trained but far from perfect: below the uniform ln(vocab) ~ 3.2, above zero.
    CHECK(loss > 0.5);
    CHECK(loss < 2.5);
    CHECK(bpc == doctest::Approx(loss / std::log(2.0)).epsilon(1e-3));
  }

  const CommandResult resume =
      run_qkv({"train", "--resume", run.string(), "--set", "train.max_iters=40"});
  REQUIRE_MESSAGE(resume.exit_code == 0, resume.err);
  CHECK(resume.err.find("resuming from " + (run / "checkpoint-30").string() + " at iter 30") !=
        std::string::npos);
  m = read_metrics(run);
  std::vector<int64_t> expected(40);
  for (int64_t i = 0; i < 40; ++i) expected[size_t(i)] = i;
  CHECK(m.iters == expected);
  CHECK(m.eval_iters == std::vector<int64_t>{0, 30, 40});
  CHECK(latest_step(run) == 40);
  CHECK(number_after(run_qkv({"info", run.string()}).out, "step") == 40);

  // Resuming a finished run trains nothing, says how to train longer, and adds no metrics.
  const CommandResult again = run_qkv({"train", "--resume", run.string()});
  REQUIRE_MESSAGE(again.exit_code == 0, again.err);
  CHECK(again.err.find("nothing to train: the run is at iter 40 and train.max_iters is 40") !=
        std::string::npos);
  CHECK(again.err.find("--set train.max_iters=N") != std::string::npos);
  CHECK(read_metrics(run).iters == expected);
  CHECK(read_metrics(run).eval_iters == std::vector<int64_t>{0, 30, 40});
}

TEST_CASE("qkv train with optim.kind = muon: said at start and by info; the kind stays on resume") {
  TempDir dir("cli_muon");
  const std::string data = dir.write("corpus.txt", generated_corpus(300));
  const fs::path run = dir.path() / "run";
  const CommandResult train = run_qkv(
      train_args(data, run, {"train.max_iters=3", "optim.kind=muon", "schedule.decay=wsd"}));
  REQUIRE_MESSAGE(train.exit_code == 0, train.err);
  CHECK(train.err.find("optimizer muon: Muon for the blocks' matrices (muon_lr 0.02, momentum "
                       "0.95, Newton-Schulz in ") != std::string::npos);
  const CommandResult info = run_qkv({"info", run.string()});
  REQUIRE_MESSAGE(info.exit_code == 0, info.err);
  CHECK(info.out.find("optim        muon lr 0.003 -> 0.0003 (wsd)") != std::string::npos);
  CHECK(info.out.find("muon_lr 0.02 (momentum 0.95)") != std::string::npos);
  const CommandResult changed =
      run_qkv({"train", "--resume", run.string(), "--set", "optim.kind=adamw"});
  CHECK(changed.exit_code == 1);
  CHECK(changed.err.starts_with(
      "error: --set optim.kind=adamw: 'optim.kind' cannot change when resuming"));
  CHECK(std::count(changed.err.begin(), changed.err.end(), '\n') == 1);
  CHECK(latest_step(run) == 3);
}

TEST_CASE("qkv train: an output directory that cannot be created is one error, nothing written") {
  TempDir dir("cli_unwritable");
  const std::string data = dir.write("corpus.txt", generated_corpus(200));
  // Root ignores permission bits, so use a path through a regular file (ENOTDIR) instead.
  const std::string file = dir.write("a_file", "not a directory\n");
  const fs::path run = fs::path(file) / "run";
  const Snapshot before = snapshot(dir.path());
  const CommandResult r = run_qkv(train_args(data, run, {"train.max_iters=5"}));
  CHECK(is_one_error_line(r));
  CHECK_MESSAGE(r.err.starts_with("error: " + run.string() + ": cannot create the run directory"),
                r.err);
  CHECK(r.err.find("Not a directory") != std::string::npos);
  CHECK(snapshot(dir.path()) == before);
}
