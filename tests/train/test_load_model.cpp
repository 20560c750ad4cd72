// load_model: the one path from a checkpoint to a model, for each model kind.
#include <doctest/doctest.h>

#include <cstring>

#include "qkv/autograd.h"
#include "qkv/error.h"
#include "qkv/load.h"
#include "qkv/train/trainer.h"
#include "support/corpus.h"
#include "support/temp_dir.h"

using namespace qkv;

namespace {

// This process only, as when started without a launcher.
const parallel::Distributed alone{};

const std::string kTiny = QKV_SOURCE_DIR "/configs/tiny.toml";

// Trains two steps of a model of `kind` in fp32 and returns its trainer, whose run holds the
// checkpoint of the weights it ends with.
std::unique_ptr<train::Trainer> trained(nn::ModelKind kind, const testing::TempDir& dir) {
  const bool pairs = kind == nn::ModelKind::encoder_decoder;
  const std::string data = pairs ? dir.write("pairs.tsv", testing::generated_pairs(400))
                                 : dir.write("corpus.txt", testing::generated_corpus(400));
  train::TrainOptions o{
      .config_path = kTiny,
      .overrides = {"model.kind=" + std::string(enum_name(kind)), "data.path=" + data,
                    "train.out_dir=" + (dir.path() / "run").string(), "train.max_iters=2",
                    "train.precision=fp32"}};
  auto t = std::make_unique<train::Trainer>(o, alone, read_environment());
  REQUIRE(t->run(std::atomic<bool>{false}));
  return t;
}

std::vector<float> val_logits(train::Task& task) {
  NoGradGuard no_grad;
  Rng rng(7);
  const Tensor logits = task.predict(data::Split::val, rng, nullptr).logits;
  return {logits.data(), logits.data() + logits.numel()};
}

}  // namespace

TEST_CASE("load_model: each model kind's checkpoint gives the trainer's logits, bit for bit") {
  for (nn::ModelKind kind :
       {nn::ModelKind::decoder, nn::ModelKind::encoder, nn::ModelKind::encoder_decoder}) {
    CAPTURE(enum_name(kind));
    testing::TempDir dir("load_model");
    const auto trainer = trained(kind, dir);
    load::LoadedModel m = load::load_model(trainer->run_dir());
    CHECK(m.config.model.kind == kind);
    CHECK(m.model_config.vocab_size == trainer->task().vocab().size());
    const io::Config config = m.config;
    const auto task = train::make_task(config, std::move(m));
    const std::vector<float> expected = val_logits(trainer->task()), got = val_logits(*task);
    REQUIRE(got.size() == expected.size());
    CHECK(std::memcmp(got.data(), expected.data(), got.size() * sizeof(float)) == 0);
  }
}

TEST_CASE("load_model: a checkpoint that does not fit the model asked for is one clear error") {
  testing::TempDir dir("load_model_bad");
  const auto trainer = trained(nn::ModelKind::decoder, dir);
  const std::string ckpt = io::resolve_checkpoint(trainer->run_dir());
  SUBCASE("another model kind") {
    io::Config other = trainer->config();
    other.model.kind = nn::ModelKind::encoder;
    CHECK_THROWS_WITH_AS(
        load::load_model(ckpt, {.config = other, .config_source = "other.toml"}),
        (ckpt + ": the checkpoint holds a decoder model, other.toml asks for encoder").c_str(),
        Error);
  }
  SUBCASE("another width") {
    io::Config wider = trainer->config();
    wider.model.n_embd = 48;
    CHECK_THROWS_WITH_AS(
        load::load_model(ckpt, {.config = wider, .config_source = "wider.toml"}),
        doctest::Contains((ckpt + "/model.safetensors: does not match the model wider.toml "
                                  "describes: 'tok_emb.weight' is [")
                              .c_str()),
        Error);
  }
  SUBCASE("no checkpoint") {
    CHECK_THROWS_AS(load::load_model((dir.path() / "nothing").string()), Error);
  }
}
