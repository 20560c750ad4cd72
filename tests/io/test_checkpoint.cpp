#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "qkv/data/sha256.h"
#include "qkv/error.h"
#include "qkv/io/checkpoint.h"
#include "qkv/io/safetensors.h"
#include "support/temp_dir.h"

using namespace qkv;
using namespace qkv::io;
namespace fs = std::filesystem;
using nlohmann::json;
using qkv::testing::read_file;
using qkv::testing::TempDir;

namespace {

// A small checkpoint whose values differ with `seed`, with floats that must survive bit for bit.
CheckpointData sample_data(int seed) {
  const float s = float(seed);
  CheckpointData d;
  d.model = {{"tok_emb.weight", Tensor::from_vector({3, 2}, {s, -0.0f, 1e-30f, 1e-45f, -2.5f, 3})},
             {"blocks.0.ln1.weight", Tensor::from_vector({2}, {1.0f + s, 0.1f})}};
  d.optimizer = {{"m.tok_emb.weight", Tensor::full({3, 2}, 0.25f * s)},
                 {"v.tok_emb.weight", Tensor::full({3, 2}, 1e-8f)},
                 {"m.blocks.0.ln1.weight", Tensor::zeros({2})},
                 {"v.blocks.0.ln1.weight", Tensor::ones({2})}};
  d.optimizer_step = 7 + seed;
  d.trainer_state = {{"iteration", 7 + seed},
                     {"rng", {{"data", 18446744073709551615ull}, {"dropout", 42}}},
                     {"best_val_loss", 1.2345678901234567},
                     {"qkv_version", QKV_VERSION}};
  d.config_toml = "[model]\nn_embd = 2\n# seed " + std::to_string(seed) + "\n";
  d.vocab = {{"chars", {"\n", "a", "é"}}, {"specials", json::array()}};
  d.data_fingerprint = data::sha256_hex("the training text " + std::to_string(seed));
  return d;
}

bool same_tensors(const NamedTensors& a, const NamedTensors& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const Tensor &x = a[i].second, &y = b[i].second;
    if (a[i].first != b[i].first || x.shape() != y.shape() ||
        std::memcmp(x.data(), y.data(), size_t(x.numel()) * sizeof(float)) != 0)
      return false;
  }
  return true;
}

void check_same(const CheckpointData& got, const CheckpointData& want) {
  CHECK(same_tensors(got.model, want.model));
  CHECK(same_tensors(got.optimizer, want.optimizer));
  CHECK(got.optimizer_step == want.optimizer_step);
  CHECK(got.trainer_state == want.trainer_state);
  CHECK(got.config_toml == want.config_toml);
  CHECK(got.vocab == want.vocab);
  CHECK(got.data_fingerprint == want.data_fingerprint);
}

void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary | std::ios::trunc)
      .write(bytes.data(), std::streamsize(bytes.size()));
}

// Every entry under dir with its bytes and modification time, to prove nothing was touched.
std::map<std::string, std::pair<std::string, fs::file_time_type>> snapshot(const fs::path& dir) {
  std::map<std::string, std::pair<std::string, fs::file_time_type>> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    out[fs::relative(e.path(), dir).string()] = {e.is_regular_file() ? read_file(e.path()) : "",
                                                 e.last_write_time()};
  return out;
}

std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// The message of the qkv::Error that fn throws (one line); fails the test if none is thrown.
std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK_MESSAGE(msg.find('\n') == std::string::npos, msg);
    return msg;
  }
  FAIL("no qkv::Error was thrown");
  return "";
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// Replaces a checkpoint file and updates the manifest to match, so only the file's own reader
// can notice what is wrong with it.
void replace_with_manifest(const fs::path& ckpt, const std::string& file,
                           const std::string& bytes) {
  write_file(ckpt / file, bytes);
  json m = json::parse(read_file(ckpt / "manifest.json"));
  m["files"][file] = {{"sha256", data::sha256_hex(bytes)}, {"bytes", bytes.size()}};
  write_file(ckpt / "manifest.json", m.dump(2));
}

std::string u64_le(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = char(v >> (8 * i));
  return s;
}

std::string raw_safetensors(const std::string& header, size_t data_bytes) {
  return u64_le(header.size()) + header + std::string(data_bytes, '\0');
}

}  // namespace

TEST_CASE("checkpoint: save then load gives back every part bit for bit") {
  TempDir tmp("checkpoint-roundtrip");
  const fs::path run = tmp.path() / "runs" / "x";  // created by the save, parents included
  const CheckpointData d = sample_data(1);
  const std::string ckpt = save_checkpoint(run.string(), 8, d);
  CHECK(ckpt == (run / "checkpoint-8").string());
  CHECK(entries(run) == std::vector<std::string>{"checkpoint-8", "latest"});
  CHECK(read_file(run / "latest") == "checkpoint-8\n");
  CHECK(entries(ckpt) == std::vector<std::string>{"config.toml", "manifest.json",
                                                  "model.safetensors", "optimizer.safetensors",
                                                  "trainer_state.json", "vocab.json"});

  SUBCASE("from the run directory and from the checkpoint directory") {
    check_same(load_checkpoint(run.string()), d);
    check_same(load_checkpoint(ckpt), d);
  }
  SUBCASE("the manifest records the format, step, fingerprint and every file's hash and size") {
    const json m = json::parse(read_file(fs::path(ckpt) / "manifest.json"));
    CHECK(m["format_version"] == 1);
    CHECK(m["qkv_version"] == QKV_VERSION);
    CHECK(m["step"] == 8);
    CHECK(m["data_fingerprint"] == d.data_fingerprint);
    CHECK(m["files"].size() == 5);
    for (const auto& [name, e] : m["files"].items()) {
      CAPTURE(name);
      CHECK(e["sha256"] == data::sha256_file_hex((fs::path(ckpt) / name).string()));
      CHECK(e["bytes"] == fs::file_size(fs::path(ckpt) / name));
    }
  }
  SUBCASE("model and optimizer files carry their metadata") {
    const auto model = read_safetensors((fs::path(ckpt) / "model.safetensors").string());
    CHECK(model.metadata ==
          std::map<std::string, std::string>{{"format", "qkv"}, {"qkv_version", QKV_VERSION}});
    const auto opt = read_safetensors((fs::path(ckpt) / "optimizer.safetensors").string());
    CHECK(opt.metadata == std::map<std::string, std::string>{{"step", "8"}});
  }
  SUBCASE("without the optimizer, its file is neither read nor verified") {
    write_file(fs::path(ckpt) / "optimizer.safetensors", "garbage");
    const CheckpointData got = load_checkpoint(ckpt, /*with_optimizer=*/false);
    CHECK(same_tensors(got.model, d.model));
    CHECK(got.optimizer.empty());
    CHECK(got.optimizer_step == 0);
    CHECK(got.trainer_state == d.trainer_state);
    CHECK(contains(error_of([&] { load_checkpoint(ckpt); }),
                   "optimizer.safetensors: has 7 bytes, the manifest records"));
  }
}

TEST_CASE("checkpoint: latest names the newest save and best the one mark_best chose") {
  TempDir tmp("checkpoint-pointers");
  const std::string run = tmp.path().string();
  save_checkpoint(run, 5, sample_data(5));
  save_checkpoint(run, 10, sample_data(10));
  CHECK(resolve_checkpoint(run) == (tmp.path() / "checkpoint-10").string());
  check_same(load_checkpoint(run), sample_data(10));

  mark_best(run, 5);
  CHECK(read_file(tmp.path() / "best") == "checkpoint-5\n");
  CHECK(read_file(tmp.path() / "latest") == "checkpoint-10\n");
  mark_best(run, 10);
  CHECK(read_file(tmp.path() / "best") == "checkpoint-10\n");
  CHECK(error_of([&] { mark_best(run, 7); }) ==
        (tmp.path() / "checkpoint-7").string() + ": not a checkpoint (no manifest.json)");
  CHECK(read_file(tmp.path() / "best") == "checkpoint-10\n");

  // An earlier checkpoint can be named directly, with or without a trailing slash.
  const std::string five = (tmp.path() / "checkpoint-5").string();
  CHECK(resolve_checkpoint(five) == five);
  CHECK(resolve_checkpoint(five + "/") == five + "/");
  check_same(load_checkpoint(five), sample_data(5));
}

TEST_CASE("checkpoint: a run directory without latest resolves to its highest complete step") {
  TempDir tmp("checkpoint-no-latest");
  const std::string run = tmp.path().string();
  save_checkpoint(run, 3, sample_data(3));
  save_checkpoint(run, 20, sample_data(20));
  save_checkpoint(run, 100, sample_data(100));
  fs::remove(tmp.path() / "latest");
  fs::remove(tmp.path() / "checkpoint-100" / "manifest.json");  // as if pruning had stopped
  CHECK(resolve_checkpoint(run) == (tmp.path() / "checkpoint-20").string());

  fs::remove(tmp.path() / "checkpoint-20" / "manifest.json");
  fs::remove(tmp.path() / "checkpoint-3" / "manifest.json");
  CHECK(contains(error_of([&] { resolve_checkpoint(run); }),
                 run + ": no complete checkpoint found (checkpoint-"));
}

TEST_CASE("checkpoint: prune keeps the newest keep_last plus best and latest") {
  TempDir tmp("checkpoint-prune");
  const std::string run = tmp.path().string();
  for (int step : {1, 2, 3, 4, 5}) save_checkpoint(run, step, sample_data(step));
  mark_best(run, 2);
  prune_checkpoints(run, 2);
  CHECK(entries(run) ==
        std::vector<std::string>{"best", "checkpoint-2", "checkpoint-4", "checkpoint-5", "latest"});

  // A resumed run saved step 3 again: latest is not among the newest, and is kept.
  save_checkpoint(run, 3, sample_data(30));
  prune_checkpoints(run, 1);
  CHECK(entries(run) ==
        std::vector<std::string>{"best", "checkpoint-2", "checkpoint-3", "checkpoint-5", "latest"});
  check_same(load_checkpoint(run), sample_data(30));
  check_same(load_checkpoint(run + "/checkpoint-2"), sample_data(2));

  SUBCASE("leftovers of dead saves go; those of a live process stay") {
    const std::string pid = std::to_string(::getpid());
    fs::create_directories(tmp.path() / (".checkpoint-9.tmp-" + pid) / "sub");
    fs::create_directories(tmp.path() / (".checkpoint-5.old-" + pid));  // checkpoint-5 is in place
    fs::create_directories(tmp.path() / ".checkpoint-9.tmp-1");         // pid 1 is alive
    fs::create_directories(tmp.path() / "checkpoint-1");                // no manifest
    prune_checkpoints(run, 1);
    CHECK(entries(run) == std::vector<std::string>{".checkpoint-9.tmp-1", "best", "checkpoint-2",
                                                   "checkpoint-3", "checkpoint-5", "latest"});
  }
  SUBCASE("a malformed pointer stops pruning before anything is deleted") {
    write_file(tmp.path() / "best", "checkpoint-two\n");
    const auto before = snapshot(run);
    CHECK(error_of([&] { prune_checkpoints(run, 1); }) ==
          (tmp.path() / "best").string() +
              ": expected 'checkpoint-<step>', found 'checkpoint-two'");
    CHECK(snapshot(run) == before);
  }
}

TEST_CASE("checkpoint: saving a step that exists replaces it with the new complete checkpoint") {
  TempDir tmp("checkpoint-same-step");
  const std::string run = tmp.path().string();
  save_checkpoint(run, 4, sample_data(1));
  save_checkpoint(run, 6, sample_data(2));
  save_checkpoint(run, 4, sample_data(3));
  CHECK(entries(run) == std::vector<std::string>{"checkpoint-4", "checkpoint-6", "latest"});
  CHECK(read_file(tmp.path() / "latest") == "checkpoint-4\n");
  check_same(load_checkpoint(run), sample_data(3));
  check_same(load_checkpoint(run + "/checkpoint-6"), sample_data(2));
}

TEST_CASE("checkpoint: a replace interrupted between two renames resumes from the old copy") {
  // The state a crash leaves on a filesystem without RENAME_EXCHANGE: latest names
  // checkpoint-4, which was moved aside and not yet replaced.
  TempDir tmp("checkpoint-interrupted");
  const std::string run = tmp.path().string();
  save_checkpoint(run, 2, sample_data(2));
  save_checkpoint(run, 4, sample_data(4));
  const fs::path old = tmp.path() / ".checkpoint-4.old-999999999";
  fs::rename(tmp.path() / "checkpoint-4", old);
  fs::create_directories(tmp.path() / ".checkpoint-4.tmp-999999999");

  CHECK(resolve_checkpoint(run) == old.string());
  CHECK(checkpoint_step(resolve_checkpoint(run)) == 4);
  check_same(load_checkpoint(run), sample_data(4));
  prune_checkpoints(run, 1);  // the old copy is still what latest resolves to
  CHECK(entries(run) ==
        std::vector<std::string>{".checkpoint-4.old-999999999", "checkpoint-2", "latest"});

  save_checkpoint(run, 6, sample_data(6));  // the resumed run goes on
  prune_checkpoints(run, 1);
  CHECK(entries(run) == std::vector<std::string>{"checkpoint-6", "latest"});

  fs::remove_all(tmp.path() / "checkpoint-6");
  CHECK(error_of([&] { resolve_checkpoint(run); }) ==
        (tmp.path() / "latest").string() +
            ": names checkpoint-6, which is missing or incomplete; pass a checkpoint directory (" +
            run + "/checkpoint-<step>) instead");
}

TEST_CASE("checkpoint: checkpoint_step reads the step from the directory name") {
  CHECK(checkpoint_step("checkpoint-500") == 500);
  CHECK(checkpoint_step("runs/x/checkpoint-0/") == 0);
  CHECK(checkpoint_step("runs/x/.checkpoint-12.old-345") == 12);
  for (const std::string bad : {"runs/x", "checkpoint-05", "checkpoint--1", "checkpoint-5a"}) {
    CAPTURE(bad);
    CHECK(error_of([&] { checkpoint_step(bad); }) ==
          bad + ": not a checkpoint directory name (expected checkpoint-<step>)");
  }
}

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
