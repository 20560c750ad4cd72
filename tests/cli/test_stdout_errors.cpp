// A result that cannot be written to stdout (a full disk; here /dev/full) is an error with exit
// code 1, whatever the command: never a success that leaves an empty file.
#include <doctest/doctest.h>

#include <memory>

#include "qkv_cli.h"

using namespace qkv::testing;

TEST_CASE("every qkv command whose stdout cannot be written exits 1 and says so") {
  TempDir dir("cli_stdout_full");
  const std::string data = dir.write("corpus.txt", generated_corpus(300));
  const fs::path run = dir.path() / "run";
  const CommandResult t = run_qkv(train_args(data, run, {"train.max_iters=5"}));
  REQUIRE_MESSAGE(t.exit_code == 0, t.err);
  const std::string r = run.string(), svg = (dir.path() / "x.svg").string();
  const std::vector<std::vector<std::string>> commands{
      {"--version"},
      {"--help"},
      {"train", kTinyConfig, "--dump-config"},
      {"info", r},
      {"eval", r, "--threads", "1"},
      {"sample", r, "--max-new-tokens", "5", "--threads", "1"},
      {"plot", r, "-o", svg},
      {"attention", r, "--prompt", "the", "--threads", "1", "-o", svg},
      {"data", "prepare", data, "--out", (dir.path() / "corpus").string()},
      {"data", "dates", "--train", "20", "--val", "5", "--out", (dir.path() / "dates").string()}};
  for (const std::vector<std::string>& args : commands) {
    CAPTURE(args);
    std::vector<std::string> argv{kQkv};
    argv.insert(argv.end(), args.begin(), args.end());
    const CommandResult c = Process(argv, "/dev/full").wait();
    CHECK(c.exit_code == 1);
    // The reason is known when the last flush failed, not when an earlier one did (--version).
    const std::string said = c.err.substr(c.err.rfind('\n', c.err.size() - 2) + 1);
    CHECK_MESSAGE((said == "error: standard output: cannot write\n" ||
                   said == "error: standard output: cannot write: No space left on device\n"),
                  c.err);
  }
}
