// Checkpoints: save and load, latest and best, pruning, replacing a step.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>

#include "checkpoint_files.h"
#include "qkv/io/safetensors.h"

using namespace qkv;
using namespace qkv::testing::checkpoint;  // with qkv::io, fs, json, read_file and TempDir

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
