// qkv data prepare, and training from what it writes: the same run as from the raw text.
#include <doctest/doctest.h>

#include "cli/qkv_cli.h"

using namespace qkv::testing;

namespace {

std::string model_sha(const fs::path& run, int step) {
  return qkv::data::sha256_file_hex(
      (run / ("checkpoint-" + std::to_string(step)) / "model.safetensors").string());
}

}  // namespace

TEST_CASE("qkv data prepare: a run from the prepared corpus equals the run from its files") {
  TempDir dir("cli_prepare");
  const std::string text = generated_corpus(1200);
  fs::create_directories(dir.path() / "parts");
  dir.write("parts/1.txt", text.substr(0, 9000));
  dir.write("parts/2.txt", text.substr(9000));
  const std::string parts = (dir.path() / "parts").string(), prepared = (dir.path() / "c").string();

  const CommandResult prep = run_qkv({"data", "prepare", parts, "--out", prepared});
  REQUIRE_MESSAGE(prep.exit_code == 0, prep.err);
  CHECK(prep.out.starts_with("wrote " + prepared + ": " + std::to_string(text.size()) +
                             " characters from 2 files"));

  const std::string whole = dir.write("whole.txt", text);
  const fs::path a = dir.path() / "a", b = dir.path() / "b", c = dir.path() / "c-run";
  for (const auto& [data, run] : {std::pair{whole, a}, {prepared, b}, {parts, c}}) {
    const CommandResult r = run_qkv(train_args(data, run, {"train.max_iters=20"}));
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  }
  CHECK(model_sha(a, 20) == model_sha(b, 20));
  CHECK(model_sha(a, 20) == model_sha(c, 20));
  // One corpus, three ways of naming it: the same fingerprint, so each resumes on the other.
  const CommandResult resume =
      run_qkv({"train", "--resume", a.string(), "--set", "data.path=" + prepared, "--set",
               "train.max_iters=25", "--threads", "1"});
  CHECK_MESSAGE(resume.exit_code == 0, resume.err);
  const CommandResult eval = run_qkv({"eval", b.string(), "--data", prepared, "--threads", "1"});
  CHECK_MESSAGE(eval.exit_code == 0, eval.err);
}

TEST_CASE("qkv data prepare: bad inputs and a taken --out are one error line each") {
  TempDir dir("cli_prepare_bad");
  const std::string good = dir.write("good.txt", "some text\n");
  const std::string missing = (dir.path() / "missing.txt").string();
  CommandResult r = run_qkv({"data", "prepare", missing, "--out", (dir.path() / "o").string()});
  CHECK(is_one_error_line(r));
  CHECK(r.err.find("input '" + missing + "' does not exist") != std::string::npos);
  r = run_qkv({"data", "prepare", (dir.path() / "*.md").string(), "--out", "o"});
  CHECK(is_one_error_line(r));
  CHECK(r.err.find("the pattern matches no file") != std::string::npos);
  const std::string bad = dir.write("bad.txt", "ok\xFF");
  r = run_qkv({"data", "prepare", good, bad, "--out", (dir.path() / "o").string()});
  CHECK(is_one_error_line(r));
  CHECK(r.err.find("input '" + bad + "': invalid UTF-8 at byte 2") != std::string::npos);
  CHECK_FALSE(fs::exists(dir.path() / "o"));
  // --out naming something that is not a prepared corpus is never replaced.
  const std::string taken = dir.write("notes.txt", "mine");
  r = run_qkv({"data", "prepare", good, "--out", taken});
  CHECK(is_one_error_line(r));
  CHECK(read_file(taken) == "mine");
  // A prepared corpus there is replaced whole.
  const std::string out = (dir.path() / "p").string();
  REQUIRE(run_qkv({"data", "prepare", good, "--out", out}).exit_code == 0);
  r = run_qkv({"data", "prepare", bad, good, "--out", out});
  CHECK(is_one_error_line(r));
  CHECK(run_qkv({"data", "prepare", good, good, "--out", out}).out.find("20 characters") !=
        std::string::npos);
}
