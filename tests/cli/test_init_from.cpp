// `qkv train --init-from CHECKPOINT`: a new run that starts from a checkpoint's weights (and its
// vocabulary), at iteration 0 with a fresh optimizer; and the mistakes it refuses.
#include <doctest/doctest.h>

#include <cstring>
#include <memory>

#include "qkv/io/safetensors.h"
#include "qkv_cli.h"

using namespace qkv::testing;

namespace {

// A decoder trained for 5 iterations on generated_corpus(300), shared by the cases (read only):
// its checkpoint-5 holds weights that are neither the initial ones nor any other run's.
struct Source {
  std::unique_ptr<TempDir> dir = std::make_unique<TempDir>("cli_init_from_source");
  std::string corpus = dir->write("corpus.txt", generated_corpus(300));
  fs::path run = dir->path() / "run";
  fs::path checkpoint = run / "checkpoint-5";
};

const Source& source() {
  static const Source s = [] {
    Source s;
    const CommandResult t = run_qkv(train_args(s.corpus, s.run, {"train.max_iters=5"}));
    REQUIRE_MESSAGE(t.exit_code == 0, t.err);
    REQUIRE(latest_step(s.run) == 5);
    return s;
  }();
  return s;
}

std::vector<std::string> init_from_args(const std::string& data, const fs::path& run,
                                        const std::vector<std::string>& settings = {}) {
  std::vector<std::string> args = train_args(data, run, settings);
  args.push_back("--init-from");
  args.push_back(source().checkpoint.string());
  return args;
}

std::string read_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Same names in the same order, same shapes, same bits.
bool same_weights(const fs::path& checkpoint_a, const fs::path& checkpoint_b) {
  const auto a = qkv::io::read_safetensors((checkpoint_a / "model.safetensors").string());
  const auto b = qkv::io::read_safetensors((checkpoint_b / "model.safetensors").string());
  if (a.tensors.size() != b.tensors.size()) return false;
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const qkv::Tensor &x = a.tensors[i].second, &y = b.tensors[i].second;
    if (a.tensors[i].first != b.tensors[i].first || !(x.shape() == y.shape()) ||
        std::memcmp(x.data(), y.data(), size_t(x.numel()) * sizeof(float)) != 0)
      return false;
  }
  return true;
}

nlohmann::json read_json(const fs::path& file) { return nlohmann::json::parse(read_text(file)); }

// Runs `args`, expects one error line holding every part of `expected`, and nothing on disk
// changed under `root` (the source run included).
void check_refused(const fs::path& root, const std::vector<std::string>& args,
                   const std::vector<std::string>& expected) {
  const Snapshot before = snapshot(root), source_before = snapshot(source().run);
  const CommandResult r = run_qkv(args);
  CHECK_MESSAGE(is_one_error_line(r), r.exit_code, r.out, r.err);
  for (const std::string& part : expected)
    CHECK_MESSAGE(r.err.find(part) != std::string::npos, part, r.err);
  CHECK(snapshot(root) == before);
  CHECK(snapshot(source().run) == source_before);
}

}  // namespace

TEST_CASE("qkv train --init-from: the new run starts from the checkpoint's weights at iter 0") {
  TempDir dir("cli_init_from");
  const Source& src = source();
  const Snapshot source_before = snapshot(src.run);

  // max_iters = 0: evaluate, then save the weights as they were loaded.
  const fs::path loaded = dir.path() / "loaded";
  const CommandResult r = run_qkv(init_from_args(src.corpus, loaded, {"train.max_iters=0"}));
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(r.err.find("weights from " + src.checkpoint.string() + " at iter 0") != std::string::npos);
  REQUIRE(latest_step(loaded) == 0);
  CHECK(same_weights(loaded / "checkpoint-0", src.checkpoint));
  CHECK(read_text(loaded / "checkpoint-0" / "vocab.json") ==
        read_text(src.checkpoint / "vocab.json"));
  // The same config without --init-from starts elsewhere: the check above can fail.
  const fs::path fresh = dir.path() / "fresh";
  REQUIRE(run_qkv(train_args(src.corpus, fresh, {"train.max_iters=0"})).exit_code == 0);
  CHECK_FALSE(same_weights(fresh / "checkpoint-0", src.checkpoint));

  // Two iterations: numbered from 0, with an optimizer that has taken 2 steps, not 5 + 2.
  const fs::path tuned = dir.path() / "tuned";
  REQUIRE(run_qkv(init_from_args(src.corpus, tuned, {"train.max_iters=2"})).exit_code == 0);
  const Metrics m = read_metrics(tuned);
  CHECK(m.iters == std::vector<int64_t>{0, 1});
  CHECK(m.eval_iters == std::vector<int64_t>{0, 2});
  // Evaluation batches depend only on (seed, iter): iter 0 of both runs sees the same batches.
  CHECK(m.val_loss.front() == read_metrics(loaded).val_loss.front());
  CHECK(m.val_loss.front() != read_metrics(fresh).val_loss.front());
  const auto optimizer =
      qkv::io::read_safetensors((tuned / "checkpoint-2" / "optimizer.safetensors").string());
  CHECK(optimizer.metadata.at("step") == "2");
  CHECK(read_json(tuned / "checkpoint-2" / "trainer_state.json").at("iter") == 2);
  CHECK_FALSE(same_weights(tuned / "checkpoint-2", src.checkpoint));
  CHECK(snapshot(src.run) == source_before);
}

TEST_CASE("qkv train --init-from: a new corpus with only the checkpoint's characters trains") {
  TempDir dir("cli_init_from_corpus");
  const Source& src = source();
  // Fewer distinct characters than the source corpus: the checkpoint's vocabulary is kept.
  std::string text;
  for (int i = 0; i < 30; ++i) text += "the cat sees the fish. ";
  const std::string corpus = dir.write("other.txt", text);
  const fs::path run = dir.path() / "run";
  const CommandResult r = run_qkv(init_from_args(corpus, run, {"train.max_iters=2"}));
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const fs::path saved = run / "checkpoint-2";
  CHECK(read_text(saved / "vocab.json") == read_text(src.checkpoint / "vocab.json"));
  CHECK(read_json(saved / "manifest.json").at("data_fingerprint") ==
        qkv::data::sha256_file_hex(corpus));
  CHECK(read_json(src.checkpoint / "manifest.json").at("data_fingerprint") !=
        qkv::data::sha256_file_hex(corpus));
  CHECK(read_metrics(run).iters == std::vector<int64_t>{0, 1});
}

TEST_CASE("qkv train --init-from: a character the checkpoint's vocabulary lacks is one error") {
  TempDir dir("cli_init_from_unknown");
  std::string text;
  for (int i = 0; i < 30; ++i) text += "the cat sees the fish. ";
  const std::string corpus = dir.write("other.txt", "the Zebra. " + text);
  check_refused(dir.path(), init_from_args(corpus, dir.path() / "run"),
                {"error: data.path '" + corpus +
                 "': character 'Z' (U+005A) at position 4 is not in the vocabulary of " +
                 source().checkpoint.string() + "/vocab.json ("});
}

TEST_CASE("qkv train --init-from: a config of another model kind is refused") {
  TempDir dir("cli_init_from_kind");
  check_refused(dir.path(),
                init_from_args(source().corpus, dir.path() / "run", {"model.kind=encoder"}),
                {"error: " + source().checkpoint.string() +
                 ": the checkpoint holds a decoder model, " + kTinyConfig + " asks for encoder\n"});
}

TEST_CASE("qkv train --init-from: a config of another shape names the mismatching tensors") {
  TempDir dir("cli_init_from_shape");
  const std::string prefix = "error: " + (source().checkpoint / "model.safetensors").string() +
                             ": does not match the model " + kTinyConfig + " describes: ";
  SUBCASE("another width") {
    check_refused(
        dir.path(), init_from_args(source().corpus, dir.path() / "run", {"model.n_embd=48"}),
        {prefix + "'tok_emb.weight' is [", ", 32], model expects [", ", 48]; '", " more)\n"});
  }
  SUBCASE("more layers") {
    check_refused(dir.path(),
                  init_from_args(source().corpus, dir.path() / "run", {"model.n_layer=3"}),
                  {prefix + "missing 'blocks.2.ln1.weight'; missing 'blocks.2.ln1.bias'; "});
  }
}

TEST_CASE("qkv train: --init-from and --resume together are refused") {
  TempDir dir("cli_init_from_resume");
  fs::copy(source().run, dir.path() / "run", fs::copy_options::recursive);
  check_refused(dir.path(),
                {"train", "--resume", (dir.path() / "run").string(), "--init-from",
                 source().checkpoint.string(), "--threads", "1"},
                {"error: --resume and --init-from exclude each other\n"});
}
