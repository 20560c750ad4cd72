// Checkpoints that are corrupt, incomplete, not checkpoints at all, or cannot be written: one
// clear error, and nothing on disk changed.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "checkpoint_files.h"
#include "qkv/io/safetensors.h"

using namespace qkv;
using namespace qkv::testing::checkpoint;  // with qkv::io, fs, json, read_file and TempDir

TEST_CASE("checkpoint: a corrupt or incomplete checkpoint is reported and left untouched") {
  TempDir tmp("checkpoint-bad");
  const std::string run = tmp.path().string();
  save_checkpoint(run, 1, sample_data(1));
  const fs::path ckpt = tmp.path() / "checkpoint-1";
  const std::string model = (ckpt / "model.safetensors").string();
  const std::string model_bytes = read_file(model);
  const std::string remedy = "; the file is corrupt — resume from an earlier checkpoint";
  std::string expected;

  SUBCASE("truncated model file, manifest unchanged") {
    write_file(model, model_bytes.substr(0, model_bytes.size() - 4));
    expected = fmt::format(
        "{}: has {} bytes, the manifest records {}; the file is truncated or "
        "changed — resume from an earlier checkpoint",
        model, model_bytes.size() - 4, model_bytes.size());
  }
  SUBCASE("truncated model file, manifest updated") {
    replace_with_manifest(ckpt, "model.safetensors", model_bytes.substr(0, model_bytes.size() - 4));
    expected = model +
               ": tensor 'blocks.0.ln1.weight' needs bytes [24, 32) of the data section, "
               "which has only 28; the file is truncated";
  }
  SUBCASE("a flipped byte") {
    std::string flipped = model_bytes;
    flipped[flipped.size() - 3] ^= 0x10;
    write_file(model, flipped);
    expected = model + ": SHA-256 does not match the manifest" + remedy;
  }
  SUBCASE("header length larger than the file") {
    replace_with_manifest(ckpt, "model.safetensors", u64_le(4096) + "{}");
    expected = model +
               ": truncated: the header claims 4096 bytes but the file has only 2 after the "
               "8-byte length";
  }
  SUBCASE("invalid JSON header") {
    replace_with_manifest(ckpt, "model.safetensors", raw_safetensors("{\"a\": [1,", 0));
    expected = model +
               ": header is not valid JSON: parse error at line 1, column 10: syntax error while "
               "parsing value - unexpected end of input; expected '[', '{', or a literal";
  }
  SUBCASE("overlapping data_offsets") {
    replace_with_manifest(
        ckpt, "model.safetensors",
        raw_safetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                        12));
    expected = model + ": tensor 'b' at bytes [4, 12) overlaps tensor 'a' at [0, 8)";
  }
  SUBCASE("out-of-range data_offsets") {
    replace_with_manifest(
        ckpt, "model.safetensors",
        raw_safetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", 12));
    expected = model +
               ": tensor 'a' needs bytes [8, 16) of the data section, which has only 12; "
               "the file is truncated";
  }
  SUBCASE("wrong dtype") {
    replace_with_manifest(
        ckpt, "model.safetensors",
        raw_safetensors(R"({"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", 4));
    expected = model + ": tensor 'a' has dtype \"F16\"; qkv reads only F32 and I32";
  }
  SUBCASE("integer tensor") {
    replace_with_manifest(
        ckpt, "model.safetensors",
        raw_safetensors(R"({"a":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})", 8));
    expected = model + ": tensor 'a' has dtype I32; checkpoints hold only F32";
  }
  SUBCASE("missing trainer_state.json") {
    fs::remove(ckpt / "trainer_state.json");
    expected = (ckpt / "trainer_state.json").string() +
               ": missing; the checkpoint is incomplete — resume from an earlier checkpoint";
  }
  SUBCASE("trainer_state.json that is not JSON") {
    replace_with_manifest(ckpt, "trainer_state.json", "{\"iteration\": 7,");
    expected = (ckpt / "trainer_state.json").string() +
               ": invalid JSON: parse error at line 1, column 17: syntax error while parsing "
               "object key - unexpected end of input; expected string literal";
  }
  SUBCASE("optimizer file without its step") {
    write_safetensors((ckpt / "optimizer.safetensors").string(), {});
    replace_with_manifest(ckpt, "optimizer.safetensors", read_file(ckpt / "optimizer.safetensors"));
    expected = (ckpt / "optimizer.safetensors").string() + ": __metadata__ has no 'step'";
  }
  SUBCASE("a manifest from a newer format") {
    json m = json::parse(read_file(ckpt / "manifest.json"));
    m["format_version"] = 2;
    write_file(ckpt / "manifest.json", m.dump());
    expected = (ckpt / "manifest.json").string() +
               ": format_version 2 is not supported; this qkv (" + QKV_VERSION +
               ") reads format_version 1";
  }
  SUBCASE("a manifest that does not list a file") {
    json m = json::parse(read_file(ckpt / "manifest.json"));
    m["files"].erase("vocab.json");
    write_file(ckpt / "manifest.json", m.dump());
    expected = (ckpt / "manifest.json").string() + ": does not list vocab.json";
  }
  SUBCASE("a manifest that is not JSON") {
    write_file(ckpt / "manifest.json", "");
    expected = (ckpt / "manifest.json").string() +
               ": invalid JSON: parse error at line 1, column 1: syntax error while parsing value "
               "- unexpected end of input; expected '[', '{', or a literal";
  }

  const auto before = snapshot(run);
  CHECK(error_of([&] { load_checkpoint(run); }) == expected);
  CHECK(snapshot(run) == before);
}

TEST_CASE("checkpoint: a path that is not a checkpoint says what it is") {
  TempDir tmp("checkpoint-not");
  const fs::path dir = tmp.path();
  const std::string missing = (dir / "nope").string();
  CHECK(error_of([&] { load_checkpoint(missing); }) == missing + ": no such file or directory");

  fs::create_directories(dir / "empty_run");
  const std::string run = (dir / "empty_run").string();
  CHECK(error_of([&] { load_checkpoint(run); }) ==
        run + ": no checkpoint found (expected checkpoint-<step>/ directories)");

  fs::create_directories(dir / "copied");
  write_file(dir / "copied" / "model.safetensors", "");
  const std::string copied = (dir / "copied").string();
  CHECK(error_of([&] { load_checkpoint(copied); }) ==
        copied + ": not a checkpoint (no manifest.json)");

  fs::create_directories(dir / "checkpoint-3");
  const std::string half = (dir / "checkpoint-3").string();
  CHECK(error_of([&] { resolve_checkpoint(half); }) ==
        half + ": not a checkpoint (no manifest.json)");

  const std::string file = tmp.write("model.safetensors", "x");
  CHECK(error_of([&] { resolve_checkpoint(file); }) ==
        file + ": not a checkpoint (expected a checkpoint or run directory)");
}

TEST_CASE("checkpoint: a failed save leaves the run directory exactly as it was") {
  TempDir tmp("checkpoint-failed-save");
  const std::string run = tmp.path().string();
  save_checkpoint(run, 1, sample_data(1));
  mark_best(run, 1);
  const auto before = snapshot(run);

  SUBCASE("a tensor that cannot be written") {
    CheckpointData d = sample_data(2);
    d.model.emplace_back("broken", Tensor());
    CHECK(contains(error_of([&] { save_checkpoint(run, 2, d); }),
                   "model.safetensors: tensor 'broken' is undefined"));
  }
  SUBCASE("the same step, failing midway, keeps the old checkpoint") {
    CheckpointData d = sample_data(2);
    d.trainer_state["note"] = "\xff";  // not UTF-8
    CHECK(contains(error_of([&] { save_checkpoint(run, 1, d); }),
                   "trainer_state.json: strings must be valid UTF-8"));
  }
  CHECK(snapshot(run) == before);
  check_same(load_checkpoint(run), sample_data(1));
}

TEST_CASE("checkpoint: an output directory that cannot be written is one error with its path") {
  // Root ignores permission bits (CI runs as root), but not a regular file in the path.
  TempDir tmp("checkpoint-unwritable");
  tmp.write("afile", "not a directory");
  const std::string run = (tmp.path() / "afile" / "run").string();
  CHECK(error_of([&] { save_checkpoint(run, 1, sample_data(1)); }) ==
        run + ": cannot create run directory: Not a directory");
  CHECK(read_file(tmp.path() / "afile") == "not a directory");

  if (::geteuid() != 0) {
    const fs::path ro = tmp.path() / "readonly";
    fs::create_directories(ro);
    ::chmod(ro.c_str(), 0555);
    CHECK(error_of([&] { save_checkpoint(ro.string(), 1, sample_data(1)); }) ==
          ro.string() + ": cannot create checkpoint directory: Permission denied");
    ::chmod(ro.c_str(), 0755);
    CHECK(fs::is_empty(ro));
  }
}
