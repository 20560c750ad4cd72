// Bad input that only shows once the data or the sizes are known: data that is not a regular
// file, splits shorter than a sequence, and models or steps bigger than the memory. Each is one
// line naming the key, exit 1, and refused before the run directory is created.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <regex>

#include "qkv_cli.h"

using namespace qkv::testing;

namespace {

// `qkv train` with `settings` is one error line starting with `expected` and creates nothing.
// A "{data}" in `expected` stands for the data file's path.
void check_refused_before_creating(const std::vector<std::string>& settings,
                                   std::string expected) {
  TempDir dir("cli_bad_input");
  std::string text;  // 500 characters: 450 train, 50 val
  for (int i = 0; i < 50; ++i) text += "abcdefghi\n";
  const std::string data = dir.write("corpus.txt", text);
  if (const size_t at = expected.find("{data}"); at != std::string::npos)
    expected.replace(at, 6, data);
  const fs::path run = dir.path() / "run";
  const CommandResult r = run_qkv(train_args(data, run, settings));
  CHECK_MESSAGE(is_one_error_line(r), r.err);
  CHECK_MESSAGE(r.err.starts_with("error: " + expected), r.err);
  CHECK_FALSE(fs::exists(run));
}

}  // namespace

TEST_CASE("qkv train: a data.path that is not a regular file is refused without reading it") {
  TempDir dir("cli_fifo");
  const fs::path fifo = dir.path() / "fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0644) == 0);
  for (const std::string& path : {fifo.string(), std::string("/dev/zero")})
    check_refused_before_creating({"data.path=" + path},
                                  "data.path '" + path + "' is not a regular file");
}

TEST_CASE("qkv train: splits shorter than a sequence are refused before the run directory") {
  check_refused_before_creating({"model.block_size=100"},
                                "data.path '{data}': "
                                "val split has 50 characters, needs at least block_size+1 = 101");
  check_refused_before_creating({"model.block_size=495", "data.val_fraction=0.01"},
                                "data.path '{data}': "
                                "train split has 495 characters, needs at least block_size+1 = 496");
  check_refused_before_creating({"model.kind=encoder", "model.block_size=60"},
                                "data.path '{data}': "
                                "val split has 50 characters, needs at least block_size = 60");
}

TEST_CASE("qkv train: a model or a step bigger than the memory says how much, before allocating") {
  for (const std::vector<std::string>& sizes :
       {std::vector<std::string>{"model.n_embd=9223372036854775807", "model.n_head=1"},
        {"model.ffn_hidden=9223372036854775807"},
        {"model.n_embd=4000000000", "model.n_head=1"},
        {"model.n_layer=100000000"}}) {
    check_refused_before_creating(sizes, "training (the weights, their gradients, AdamW's state "
                                         "and one step's activations) needs ~");
  }
  check_refused_before_creating({"train.batch_size=1000000000"},
                                "training (");
#if defined(__SANITIZE_ADDRESS__)
  MESSAGE("skipped: AddressSanitizer's shadow memory does not start under a 4 GB address space");
  return;
#endif
  TempDir dir("cli_memory_limit");
  const std::string data = dir.write("corpus.txt", generated_corpus(1000));
  const fs::path run = dir.path() / "run";
  // 10000 layers need ~5.6 GB to train, more than a 4 GB address-space limit allows.
  std::string command = "ulimit -v 4000000 && exec " + kQkv;
  for (const std::string& a : train_args(data, run, {"model.n_layer=10000"})) command += " " + a;
  const CommandResult r = run_command({"/bin/sh", "-c", command});
  CHECK_MESSAGE(is_one_error_line(r), r.err);
  CHECK_MESSAGE(std::regex_search(r.err, std::regex("needs ~[0-9.]+ GB, the machine has 4.1 GB; "
                                                    "lower ")),
                r.err);
  CHECK_FALSE(fs::exists(run));
}
