// Damaged or wrong checkpoints given to `qkv info`, `qkv eval` and `qkv train --resume`: one
// error line naming the file and the problem, exit code 1, and nothing on disk changed.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>

#include "qkv/io/safetensors.h"
#include "qkv_cli.h"

using namespace qkv::testing;
using qkv::NamedTensors;

namespace {

// One trained run per model kind shared by the cases (each works on a copy): checkpoint-5 is
// its latest.
const fs::path& trained_run(const std::string& kind = "decoder") {
  static const auto dir = std::make_unique<TempDir>("cli_bad_checkpoint_source");
  static std::map<std::string, fs::path> runs;
  if (const auto it = runs.find(kind); it != runs.end()) return it->second;
  const std::string data = kind == "encoder_decoder"
                               ? dir->write("pairs.tsv", generated_pairs(300))
                               : dir->write("corpus.txt", generated_corpus(300));
  const fs::path r = dir->path() / kind;
  const CommandResult t = run_qkv(train_args(data, r, {"train.max_iters=5", "model.kind=" + kind}));
  REQUIRE_MESSAGE(t.exit_code == 0, t.err);
  return runs[kind] = r;
}

// A copy of the trained decoder run in dir/run, for a case to damage.
fs::path copy_of_trained_run(const TempDir& dir) {
  const fs::path run = dir.path() / "run";
  fs::copy(trained_run(), run, fs::copy_options::recursive);
  return run;
}

std::string read_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The header length a safetensors file starts with (8 bytes, little-endian).
uint64_t header_length(const std::string& bytes) {
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | static_cast<unsigned char>(bytes[i]);
  return length;
}

// Replaces a checkpoint's file and records its new size and SHA-256 in manifest.json as a save
// would, so the manifest check passes and only the deeper checks can notice what is wrong.
void replace_with_manifest(const fs::path& checkpoint, const std::string& file,
                           const std::string& bytes) {
  std::ofstream(checkpoint / file, std::ios::binary | std::ios::trunc)
      .write(bytes.data(), std::streamsize(bytes.size()));
  nlohmann::json manifest = nlohmann::json::parse(read_bytes(checkpoint / "manifest.json"));
  REQUIRE(manifest["files"].contains(file));
  manifest["files"][file] = {{"sha256", qkv::data::sha256_file_hex((checkpoint / file).string())},
                             {"bytes", bytes.size()}};
  std::ofstream(checkpoint / "manifest.json", std::ios::trunc) << manifest.dump(2) << "\n";
}

// Rewrites a checkpoint's model.safetensors with `edit` applied to its tensors (metadata kept),
// manifest updated.
void edit_model(const fs::path& checkpoint, const std::function<void(NamedTensors&)>& edit) {
  const fs::path model = checkpoint / "model.safetensors";
  qkv::io::SafetensorsContents c = qkv::io::read_safetensors(model.string());
  edit(c.tensors);
  const fs::path edited = checkpoint.parent_path() / "edited.safetensors";
  qkv::io::write_safetensors(edited.string(), c.tensors, c.metadata);
  const std::string bytes = read_bytes(edited);
  fs::remove(edited);
  replace_with_manifest(checkpoint, "model.safetensors", bytes);
}

// Replaces the first `from` in a checkpoint file by `to` (in a safetensors header, of the same
// length, so the header length and data offsets stay right), manifest updated.
void replace_text(const fs::path& checkpoint, const std::string& file, const std::string& from,
                  const std::string& to) {
  std::string bytes = read_bytes(checkpoint / file);
  const size_t at = bytes.find(from);
  REQUIRE(at != std::string::npos);
  bytes.replace(at, from.size(), to);
  replace_with_manifest(checkpoint, file, bytes);
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
  const fs::path run = copy_of_trained_run(dir);
  const fs::path model = run / "checkpoint-5" / "model.safetensors";
  flip_byte(model, 7);  // in the tensor data, where only the checksum can notice
  check_rejected(dir.path(), run, {"error: " + model.string() + ": SHA-256 does not match"});
  check_rejected(dir.path(), run / "checkpoint-5", {model.string(), "SHA-256"});
}

TEST_CASE("qkv info/eval/train --resume: a truncated model.safetensors is reported") {
  TempDir dir("cli_truncated");
  const fs::path run = copy_of_trained_run(dir);
  const fs::path model = run / "checkpoint-5" / "model.safetensors";
  fs::resize_file(model, fs::file_size(model) / 2);
  check_rejected(dir.path(), run, {"error: " + model.string() + ": has ", "truncated"});
}

TEST_CASE("qkv info/eval/train --resume: a missing trainer_state.json is reported") {
  TempDir dir("cli_missing_state");
  const fs::path run = copy_of_trained_run(dir);
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

TEST_CASE("qkv info/eval/train --resume: a run without checkpoints says how to start it again") {
  TempDir dir("cli_no_checkpoints");
  const fs::path run = copy_of_trained_run(dir);
  for (const char* entry : {"checkpoint-5", "latest", "best"}) fs::remove_all(run / entry);
  REQUIRE(fs::exists(run / "metrics.jsonl"));
  check_rejected(dir.path(), run,
                 {"error: " + run.string() +
                  ": no checkpoint yet: the run stopped before its first save; start it again "
                  "with `qkv train " +
                  (run / "config.toml").string() + " --out " + run.string() + "`"});
}

TEST_CASE("qkv info/eval/train --resume: header length larger than the file is reported") {
  TempDir dir("cli_header_length");
  const fs::path run = copy_of_trained_run(dir);
  const fs::path ckpt = run / "checkpoint-5";
  const fs::path model = ckpt / "model.safetensors";
  std::string bytes = read_bytes(model);
  bytes[5] = 1;  // the length's sixth byte: 2^40 more than the header really has
  replace_with_manifest(ckpt, "model.safetensors", bytes);
  const uint64_t after_length = bytes.size() - 8;
  check_rejected(dir.path(), run,
                 {"error: " + model.string() + ": truncated: the header claims ",
                  " bytes but the file has only " + std::to_string(after_length) +
                      " after the 8-byte length"});
}

TEST_CASE("qkv info/eval/train --resume: a malformed safetensors header is reported") {
  TempDir dir("cli_bad_header");
  const fs::path run = copy_of_trained_run(dir);
  const fs::path ckpt = run / "checkpoint-5";
  const fs::path model = ckpt / "model.safetensors";
  // A header of `json` padded to its original length, so the data section stays where it was.
  auto with_header = [&](std::string json) {
    std::string bytes = read_bytes(model);
    const uint64_t length = header_length(bytes);
    REQUIRE(json.size() <= length);
    json.resize(length, ' ');
    replace_with_manifest(ckpt, "model.safetensors", bytes.replace(8, length, json));
  };
  SUBCASE("invalid JSON") {
    with_header(R"({"tok_emb.weight": {"dtype": "F32", "shape": [2, 4],)");
    check_rejected(dir.path(), run,
                   {"error: " + model.string() +
                    ": header is not valid JSON: parse error at line 1, column "});
  }
  SUBCASE("overlapping data_offsets") {
    with_header(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})");
    check_rejected(dir.path(), run,
                   {"error: " + model.string() +
                    ": tensor 'b' at bytes [8, 16) overlaps tensor 'a' at [0, 16)\n"});
  }
  SUBCASE("data_offsets past the end of the file") {
    const uint64_t data_bytes = fs::file_size(model) - 8 - header_length(read_bytes(model));
    const uint64_t end = data_bytes + 8;
    with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[)" + std::to_string(end - 8) +
                "," + std::to_string(end) + "]}}");
    check_rejected(
        dir.path(), run,
        {"error: " + model.string() + ": tensor 'a' needs bytes [" + std::to_string(end - 8) +
         ", " + std::to_string(end) + ") of the data section, which has only " +
         std::to_string(data_bytes) + "; the file is truncated\n"});
  }
}

TEST_CASE("qkv info/eval/train --resume: a model.safetensors of the wrong dtype is reported") {
  TempDir dir("cli_wrong_dtype");
  const fs::path run = copy_of_trained_run(dir);
  const fs::path ckpt = run / "checkpoint-5";
  const fs::path model = ckpt / "model.safetensors";
  SUBCASE("F16, which qkv does not read") {
    replace_text(ckpt, "model.safetensors", "\"dtype\":\"F32\"", "\"dtype\":\"F16\"");
    check_rejected(dir.path(), run,
                   {"error: " + model.string() + ": tensor '",
                    "' has dtype \"F16\"; qkv reads "
                    "only F32 and I32"});
  }
  SUBCASE("I32, which a checkpoint never holds") {
    replace_text(ckpt, "model.safetensors", "\"dtype\":\"F32\"", "\"dtype\":\"I32\"");
    check_rejected(
        dir.path(), run,
        {"error: " + model.string() + ": tensor '", "' has dtype I32; checkpoints hold only F32"});
  }
}

TEST_CASE("qkv info/eval/train --resume: weights that are not finite are refused") {
  TempDir dir("cli_nan_weights");
  const fs::path run = copy_of_trained_run(dir);
  const fs::path ckpt = run / "checkpoint-5";
  std::string name;
  edit_model(ckpt, [&](NamedTensors& tensors) {
    name = tensors.back().first;
    tensors.back().second.data()[1] = std::nanf("");  // with a manifest that matches it
  });
  check_rejected(dir.path(), run,
                 {"error: " + (ckpt / "model.safetensors").string() + ": tensor '" + name +
                  "' holds nan at element 1; the file is damaged"});
}

TEST_CASE("qkv info/eval/train --resume: weights that do not fit config.toml name the tensors") {
  TempDir dir("cli_weights_mismatch");
  const fs::path run = copy_of_trained_run(dir);
  const fs::path ckpt = run / "checkpoint-5";
  const std::string prefix = "error: " + (ckpt / "model.safetensors").string() +
                             ": does not match the model " + (ckpt / "config.toml").string() +
                             " describes: ";
  auto find = [](NamedTensors& t, const std::string& name) {
    const auto it = std::find_if(t.begin(), t.end(), [&](auto& e) { return e.first == name; });
    REQUIRE(it != t.end());
    return it;
  };
  SUBCASE("a missing tensor") {
    edit_model(ckpt, [&](NamedTensors& t) { t.erase(find(t, "ln_f.weight")); });
    check_rejected(dir.path(), run, {prefix + "missing 'ln_f.weight'\n"});
  }
  SUBCASE("an extra tensor") {
    edit_model(ckpt, [](NamedTensors& t) {
      t.emplace_back("blocks.2.ln1.weight", qkv::Tensor::ones({32}));
    });
    check_rejected(dir.path(), run, {prefix + "unexpected 'blocks.2.ln1.weight'\n"});
  }
  SUBCASE("a tensor whose shape is not the config's") {
    edit_model(ckpt,
               [&](NamedTensors& t) { find(t, "ln_f.bias")->second = qkv::Tensor::zeros({31}); });
    check_rejected(dir.path(), run, {prefix + "'ln_f.bias' is [31], model expects [32]\n"});
  }
  SUBCASE("every tensor of another width: the first few, and how many more") {
    edit_model(ckpt, [](NamedTensors& t) {
      for (auto& [name, tensor] : t) {
        qkv::Shape shape = tensor.shape();
        for (int i = 0; i < shape.rank(); ++i) shape[i] = shape[i] == 32 ? 48 : shape[i];
        tensor = qkv::Tensor::zeros(shape);
      }
    });
    check_rejected(
        dir.path(), run,
        {prefix + "'tok_emb.weight' is [", ", 48], model expects [", ", 32]; '", " more)\n"});
  }
}

TEST_CASE("qkv info/eval/train --resume: a config.toml of another model kind is refused") {
  TempDir dir("cli_other_kind");
  for (const auto& [from, to] : {std::pair<std::string, std::string>{"encoder", "decoder"},
                                 {"decoder", "encoder_decoder"}}) {
    CAPTURE(from);
    const fs::path run = dir.path() / from;
    fs::copy(trained_run(from), run, fs::copy_options::recursive);
    const fs::path ckpt = run / "checkpoint-5";
    replace_text(ckpt, "config.toml", "kind = '" + from + "'", "kind = '" + to + "'");
    check_rejected(dir.path(), run,
                   {"error: " + (ckpt / "config.toml").string() + ": model.kind is " + to +
                    ", but " + ckpt.string() + "/trainer_state.json records model_kind " + from +
                    " for these weights; this config.toml does not belong to them\n"});
  }
}

TEST_CASE("qkv info/eval/train --resume: trainer_state.json is checked: types, ranges, its step") {
  TempDir dir("cli_trainer_state");
  const fs::path source = copy_of_trained_run(dir);
  const nlohmann::json good =
      nlohmann::json::parse(read_bytes(source / "checkpoint-5" / "trainer_state.json"));
  struct Case {
    const char* key;
    nlohmann::json value;  // null: the key is removed
    std::string expected;
  };
  const std::vector<Case> cases{
      {"iter", -5, "'iter' is -5, expected a non-negative integer"},
      {"iter", 3.7, "'iter' is 3.7, expected a non-negative integer"},
      {"iter", "5", "'iter' is \"5\", expected a non-negative integer"},
      {"iter", nlohmann::json::array({5}), "'iter' is [5], expected a non-negative integer"},
      {"iter", 7, "'iter' is 7, but the directory holds step 5"},
      {"iter", nullptr, "no 'iter'"},
      {"micro_batches", 0, "'micro_batches' is 0 and 'processes' 1, expected positive integers"},
      {"processes", nullptr, "no 'processes'"},
      {"best_val_loss", "low", "'best_val_loss' is \"low\", expected a finite number or null"},
      {"last_eval", 3, "'last_eval' is 3, expected null or an object"},
      {"model_kind", 4, "'model_kind' is 4, expected one of: decoder, encoder, encoder_decoder"},
  };
  int n = 0;
  for (const Case& c : cases) {
    CAPTURE(c.key);
    CAPTURE(c.value.dump());
    const fs::path run = dir.path() / ("run" + std::to_string(n++));
    fs::copy(source, run, fs::copy_options::recursive);
    nlohmann::json state = good;
    if (c.value.is_null())
      state.erase(c.key);
    else
      state[c.key] = c.value;
    const fs::path ckpt = run / "checkpoint-5";
    replace_with_manifest(ckpt, "trainer_state.json", state.dump(2));
    check_rejected(dir.path(), run,
                   {"error: " + (ckpt / "trainer_state.json").string() + ": " + c.expected,
                    "; the checkpoint is damaged or was edited — resume from an earlier "
                    "checkpoint\n"});
  }
}

TEST_CASE("qkv train --resume: trainer_state.json's iter must match the optimizer's step") {
  TempDir dir("cli_optimizer_step");
  const fs::path run = copy_of_trained_run(dir);
  const fs::path ckpt = run / "checkpoint-5";
  replace_text(ckpt, "optimizer.safetensors", "\"step\":\"5\"", "\"step\":\"6\"");
  const Snapshot before = snapshot(dir.path());
  const CommandResult r = run_qkv({"train", "--resume", run.string(), "--threads", "1"});
  CHECK_MESSAGE(is_one_error_line(r), r.err);
  CHECK_MESSAGE(r.err.starts_with("error: " + (ckpt / "trainer_state.json").string() +
                                  ": 'iter' is 5, but optimizer.safetensors records step 6"),
                r.err);
  CHECK(snapshot(dir.path()) == before);
}

TEST_CASE("qkv info/eval/train --resume: trainer_state.json's iter must match the manifest's step") {
  TempDir dir("cli_manifest_step");
  const fs::path run = copy_of_trained_run(dir);
  const fs::path ckpt = run / "checkpoint-5";
  nlohmann::json manifest = nlohmann::json::parse(read_bytes(ckpt / "manifest.json"));
  REQUIRE(manifest["step"] == 5);
  manifest["step"] = 9;
  std::ofstream(ckpt / "manifest.json", std::ios::trunc) << manifest.dump(2) << "\n";
  check_rejected(dir.path(), run,
                 {"error: " + (ckpt / "trainer_state.json").string() +
                  ": 'iter' is 5, but manifest.json records step 9"});
}
