// Messages that used to mislead: each bad input below is one error line that names the file or
// option at fault and what is wrong with it, not a symptom further on.
#include <doctest/doctest.h>
#include <signal.h>

#include <memory>

#include "qkv_cli.h"

using namespace qkv::testing;

namespace {

// The command fails with one line: "error: <line>", or one starting so when `whole` is false.
void check_error(const std::vector<std::string>& args, const std::string& line,
                 bool whole = true) {
  CAPTURE(args);
  const CommandResult r = run_qkv(args);
  CHECK_MESSAGE(is_one_error_line(r), r.err);
  CHECK_MESSAGE(whole ? r.err == "error: " + line + "\n" : r.err.starts_with("error: " + line),
                r.err);
}

}  // namespace

TEST_CASE("qkv: inputs of the wrong kind are named with what they are") {
  TempDir dir("cli_messages");
  const fs::path run = dir.path() / "run";
  fs::copy(trained_decoder_run("cli_messages_source"), run, fs::copy_options::recursive);
  const std::string data = dir.write("corpus.txt", generated_corpus(100));

  fs::remove(run / "latest");
  fs::create_directory(run / "latest");
  check_error({"info", run.string()},
              (run / "latest").string() + ": a directory, not a regular file");
  check_error({"sample", trained_decoder_run("cli_messages_source").string(), "--prompt-file", dir.path().string()},
              "--prompt-file " + dir.path().string() + ": a directory, not a regular file");
  check_error({"sample", trained_decoder_run("cli_messages_source").string(), "--stop", "\xff"},
              "sample: stop string: invalid UTF-8 at byte 0 (0xFF", false);

  const fs::path loop = dir.path() / "loop.txt";
  fs::create_symlink(loop, loop);
  check_error(train_args(loop.string(), dir.path() / "new"),
              "data.path '" + loop.string() +
                  "' cannot be read: Too many levels of symbolic links");
  check_error({"train", kTinyConfig, "--set", "data.path=" + data, "--set", "train.out_dir="},
              "train.out_dir is empty; give the run directory with --out DIR or --set "
              "train.out_dir=DIR");
  check_error({"serve", dir.path().string(), "--port", "abc"},
              "--port: expected a whole number from 0 to 65535, got 'abc'; see qkv --help");
  check_error({"eval", trained_decoder_run("cli_messages_source").string(), "--beam", "100000"},
              "--beam: expected a whole number from 1 to 64, got '100000'; see qkv --help");
}

TEST_CASE("qkv train: a message names the setting or the file that is at fault") {
  TempDir dir("cli_messages_blame");
  const std::string data = dir.write("corpus.txt", generated_corpus(100));
  const std::string run = (dir.path() / "run").string();
  check_error({"train", kTinyConfig, "--set", "data.path=[]", "--out", run},
              "--set data.path=[]: data.path is an empty list; point it at a text file");
  // tiny.toml sets both lr and weight_decay: the --set of either one is named.
  check_error({"train", kTinyConfig, "--set", "data.path=" + data, "--set",
               "optim.weight_decay=1e30", "--out", run},
              "--set optim.weight_decay=1e30: optim.weight_decay = 1e+30 with optim.lr = 0.003 "
              "would scale every weight by -3e+27 each step; it must keep lr·weight_decay below 1");
  check_error({"train", kTinyConfig, "--set", "data.path=" + data, "--set", "optim.lr=20",
               "--out", run},
              "--set optim.lr=20: optim.weight_decay = 0.1 with optim.lr = 20 would scale every "
              "weight by -1 each step; it must keep lr·weight_decay below 1");

  const std::string short_text = dir.write("short.txt", "abcdefgh");
  check_error(train_args(short_text, run),
              "data.path '" + short_text +
                  "': train split has 7 characters, needs at least block_size+1 = 17; use a "
                  "longer corpus, or lower data.val_fraction or block_size");
  const std::string more = dir.write("more.txt", "ijk");
  check_error({"train", kTinyConfig, "--set",
               "data.path=[\"" + short_text + "\", \"" + more + "\"]", "--out", run},
              "data.path '" + short_text + "' and 1 more files: train split has", false);
  const std::string one_pair = dir.write("one.tsv", "ab\tba\n");
  check_error({"train", kTinyConfig, "--set", "data.path=" + one_pair, "--set",
               "model.kind=encoder_decoder", "--out", run},
              "data.path '" + one_pair +
                  "': the train split has no pairs; lower data.val_fraction");
  CHECK_FALSE(fs::exists(run));
}

TEST_CASE("qkv info/eval/sample: a run training toward its first checkpoint is not a stopped one") {
  TempDir dir("cli_messages_training");
  const std::string data = dir.write("corpus.txt", generated_corpus(300));
  const fs::path run = dir.path() / "run";
  std::vector<std::string> argv{kQkv};
  for (const std::string& a : train_args(data, run, {"train.max_iters=1000000",
                                                     "train.checkpoint_interval=1000000",
                                                     "train.eval_interval=1000000"}))
    argv.push_back(a);
  Process trainer(argv);
  REQUIRE(wait_until(trainer, [&] { return count_lines(run / "metrics.jsonl") >= 1; }));
  for (const char* command : {"info", "eval", "sample"})
    check_error({command, run.string()},
                run.string() + ": no checkpoint yet: qkv train (pid " +
                    std::to_string(trainer.pid()) +
                    ") is training this run and has not saved one; try again after its first "
                    "save");
  trainer.send(SIGINT);
  CHECK(trainer.wait().exit_code == 130);  // stopped, and saved
}

TEST_CASE("qkv plot: a run and another program's CSV on one time axis, and what it refuses") {
  TempDir dir("cli_messages_plot");
  const std::string run = trained_decoder_run("cli_messages_source").string();
  const std::string csv = dir.write("torch.csv", "seconds,val_loss\n0,4.2\n3.5,2.5\n");
  const std::string svg = (dir.path() / "t.svg").string();
  const CommandResult ok = run_qkv({"plot", run, csv, "--x", "seconds", "--label", "qkv",
                                    "--label", "PyTorch", "-o", svg});
  CHECK_MESSAGE(ok.exit_code == 0, ok.err);
  const std::string chart = read_file(svg);
  CHECK(chart.find(">PyTorch<") != std::string::npos);
  CHECK(chart.find("seconds of training") != std::string::npos);

  check_error({"plot", run, csv, "--label", "qkv", "-o", svg},
              "--label given 1 times for 2 inputs: give one per input, in order");
  check_error({"plot", csv, "-o", svg},
              csv + ":1: the header is 'seconds,val_loss', this chart needs 'iter,val_loss' "
                    "(--x seconds plots a time column)");
}
