// Command-line mistakes are user errors: one line naming the flag or the command, exit 1, in
// words rather than CLI11's range text (which printed DBL_MAX in 309 digits), and flags that
// would make sampling need more memory than the machine has are refused before it starts.
#include <doctest/doctest.h>

#include "qkv_cli.h"

using namespace qkv::testing;

TEST_CASE("qkv: a mistyped command is answered with the nearest one") {
  const CommandResult r = run_qkv({"trian", kTinyConfig});
  CHECK(is_one_error_line(r));
  CHECK_MESSAGE(r.err.starts_with("error: 'trian' is not a qkv command (did you mean 'train'?); "
                                  "the commands are train, eval, info, sample, data, plot, "
                                  "attention"),
                r.err);
}

TEST_CASE("qkv: numeric flags out of range name the flag and the range, never wrap") {
  TempDir dir("cli_flag_ranges");
  const std::string run = (dir.path() / "run").string();
  const std::vector<std::vector<std::string>> commands{
      {"sample", run, "--seed", "-1"},
      {"attention", run, "--prompt", "a", "--head", "-1"},
      {"attention", run, "--prompt", "a", "--layer", "-1"},
      {"eval", run, "--batches", "0"},
      {"eval", run, "--beam", "0"},
      {"sample", run, "--num-samples", "0"},
      {"sample", run, "--max-new-tokens", "-1"},
      {"train", kTinyConfig, "--threads", "-1"},
      {"data", "dates", "--seed", "-1"},
      {"data", "dates", "--train", "0"},
  };
  for (const std::vector<std::string>& args : commands) {
    const std::string flag = args[args.size() - 2], value = args.back();
    CAPTURE(flag);
    const CommandResult r = run_qkv(args);
    CHECK(is_one_error_line(r));
    CHECK_MESSAGE(r.err.starts_with("error: " + flag + ": expected a whole number from "), r.err);
    CHECK(r.err.find("got '" + value + "'") != std::string::npos);
    CHECK(r.err.find("179769") == std::string::npos);  // DBL_MAX
  }
  CHECK_FALSE(fs::exists(run));
}

TEST_CASE("qkv data dates: a directory that cannot be created is a user error") {
  const CommandResult r = run_qkv({"data", "dates", "--out", "/proc/qkv/dates"});
  CHECK(is_one_error_line(r));
  CHECK_MESSAGE(r.err.starts_with("error: --out /proc/qkv/dates: cannot create the directory: "),
                r.err);
}

TEST_CASE("qkv sample: --max-new-tokens is bounded by the machine's memory, --beam by 64") {
  TempDir dir("cli_sampling_bounds");
  const fs::path text_run = dir.path() / "text", pairs_run = dir.path() / "pairs";
  const std::string text = dir.write("corpus.txt", generated_corpus(300));
  const std::string pairs = dir.write("pairs.tsv", generated_pairs(300));
  REQUIRE(run_qkv(train_args(text, text_run, {"train.max_iters=1"})).exit_code == 0);
  REQUIRE(run_qkv(train_args(pairs, pairs_run,
                             {"train.max_iters=1", "model.kind=encoder_decoder"}))
              .exit_code == 0);
  struct Case {
    std::vector<std::string> args;
    std::string expected;
  };
  for (const Case& c :
       {Case{{"sample", text_run.string(), "--max-new-tokens", "9223372036854775807"},
             "error: --max-new-tokens 9223372036854775807 (the model and 1 sequence of up to "
             "9223372036854775807 tokens) needs ~"}}) {
    CAPTURE(c.args);
    const CommandResult r = run_qkv(c.args);
    CHECK(is_one_error_line(r));
    CHECK_MESSAGE(r.err.starts_with(c.expected), r.err);
    CHECK(r.err.find(", the machine has ") != std::string::npos);
    CHECK(r.err.ends_with("; lower " + c.args[c.args.size() - 2] + "\n"));
  }
  for (const char* command : {"sample", "eval"}) {
    const CommandResult r = run_qkv({command, pairs_run.string(), "--beam", "1000000000000"});
    CHECK(is_one_error_line(r));
    CHECK(r.err == "error: --beam: expected a whole number from 1 to 64, got '1000000000000'; "
                   "see qkv --help\n");
  }
}
