// Damaged or wrong checkpoints given to `qkv info`, `qkv eval` and `qkv train --resume`: one
// error line naming the file and the problem, exit code 1, and nothing on disk changed.
#include <doctest/doctest.h>

#include <memory>

#include "qkv_cli.h"

using namespace qkv::testing;

namespace {

// One trained run shared by the cases (each works on a copy): checkpoint-5 is its latest.
const fs::path& trained_run() {
  static const auto dir = std::make_unique<TempDir>("cli_bad_checkpoint_source");
  static const fs::path run = [] {
    const std::string data = dir->write("corpus.txt", generated_corpus(300));
    const fs::path r = dir->path() / "run";
    const CommandResult t = run_qkv(train_args(data, r, {"train.max_iters=5"}));
    REQUIRE_MESSAGE(t.exit_code == 0, t.err);
    return r;
  }();
  return run;
}

void flip_byte(const fs::path& file, std::streamoff offset_from_end) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(-offset_from_end, std::ios::end);
  const char c = static_cast<char>(f.get());
  f.seekp(-offset_from_end, std::ios::end);
  f.put(static_cast<char>(c ^ 0x01));
  REQUIRE(f.good());
}

// Runs each command that reads a checkpoint on `target` and checks the error and that nothing
// under `root` changed.
void check_rejected(const fs::path& root, const fs::path& target,
                    const std::vector<std::string>& expected) {
  const Snapshot before = snapshot(root);
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"info", target.string()},
        std::vector<std::string>{"eval", target.string(), "--threads", "1"},
        std::vector<std::string>{"train", "--resume", target.string(), "--threads", "1"}}) {
    CAPTURE(args.front());
    const CommandResult r = run_qkv(args);
    CHECK_MESSAGE(is_one_error_line(r), r.exit_code, r.out, r.err);
    for (const std::string& part : expected)
      CHECK_MESSAGE(r.err.find(part) != std::string::npos, part, r.err);
    CHECK(snapshot(root) == before);
  }
}

}  // namespace

TEST_CASE("qkv info/eval/train --resume: a flipped byte in model.safetensors is reported") {
  TempDir dir("cli_flipped_byte");
  const fs::path run = dir.path() / "run";
  fs::copy(trained_run(), run, fs::copy_options::recursive);
  const fs::path model = run / "checkpoint-5" / "model.safetensors";
  flip_byte(model, 7);  // in the tensor data, where only the checksum can notice
  check_rejected(dir.path(), run, {"error: " + model.string() + ": SHA-256 does not match"});
  check_rejected(dir.path(), run / "checkpoint-5", {model.string(), "SHA-256"});
}

TEST_CASE("qkv info/eval/train --resume: a truncated model.safetensors is reported") {
  TempDir dir("cli_truncated");
  const fs::path run = dir.path() / "run";
  fs::copy(trained_run(), run, fs::copy_options::recursive);
  const fs::path model = run / "checkpoint-5" / "model.safetensors";
  fs::resize_file(model, fs::file_size(model) / 2);
  check_rejected(dir.path(), run, {"error: " + model.string() + ": has ", "truncated"});
}

TEST_CASE("qkv info/eval/train --resume: a missing trainer_state.json is reported") {
  TempDir dir("cli_missing_state");
  const fs::path run = dir.path() / "run";
  fs::copy(trained_run(), run, fs::copy_options::recursive);
  const fs::path state = run / "checkpoint-5" / "trainer_state.json";
  fs::remove(state);
  check_rejected(dir.path(), run, {"error: " + state.string() + ": missing"});
}

TEST_CASE("qkv info/eval/train --resume: a directory that is not a checkpoint is refused") {
  TempDir dir("cli_not_a_checkpoint");
  SUBCASE("unrelated files") {
    const fs::path notes = dir.path() / "notes";
    fs::create_directories(notes);
    dir.write("notes/todo.txt", "buy milk\n");
    check_rejected(dir.path(), notes,
                   {"error: " + notes.string() + ": no checkpoint found (expected checkpoint-"});
  }
  SUBCASE("checkpoint files without their manifest") {
    const fs::path weights = dir.path() / "weights";
    fs::copy(trained_run() / "checkpoint-5", weights, fs::copy_options::recursive);
    fs::remove(weights / "manifest.json");
    check_rejected(dir.path(), weights,
                   {"error: " + weights.string() + ": not a checkpoint (no manifest.json)"});
  }
  SUBCASE("a regular file") {
    const std::string file = dir.write("model.bin", "weights?\n");
    check_rejected(dir.path(), file, {"error: " + file + ": not a checkpoint"});
  }
  SUBCASE("a path that does not exist") {
    const fs::path nowhere = dir.path() / "nowhere";
    check_rejected(dir.path(), nowhere, {"error: " + nowhere.string() + ": no such file"});
  }
}

TEST_CASE("qkv info/eval/train --resume: a run directory without checkpoints is refused") {
  TempDir dir("cli_no_checkpoints");
  const fs::path run = dir.path() / "run";
  fs::copy(trained_run(), run, fs::copy_options::recursive);
  for (const char* entry : {"checkpoint-5", "latest", "best"}) fs::remove_all(run / entry);
  REQUIRE(fs::exists(run / "metrics.jsonl"));
  check_rejected(dir.path(), run, {"error: " + run.string() + ": no checkpoint found"});
}
