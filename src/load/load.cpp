// The one path from a checkpoint to a model.
#include "qkv/load.h"

#include <fmt/ranges.h>

#include <algorithm>

#include "qkv/cost.h"
#include "qkv/error.h"
#include "qkv/io/trainer_state.h"
#include "qkv/nn/models.h"

namespace qkv::load {
namespace {

// A missing, extra or differently shaped tensor is one error naming the first few: a different
// n_embd changes nearly every tensor. Nothing is copied then.
void load_weights(nn::Module& model, const io::CheckpointData& checkpoint, const std::string& dir,
                  const std::string& config_source) {
  const std::vector<std::string> problems = model.state_dict_problems(checkpoint.model);
  constexpr size_t kShown = 4;
  QKV_CHECK(problems.empty(), "{}/model.safetensors: does not match the model {} describes: {}{}",
            dir, config_source,
            fmt::join(problems.begin(), problems.begin() + std::min(problems.size(), kShown), "; "),
            problems.size() > kShown ? fmt::format(" (and {} more)", problems.size() - kShown)
                                     : std::string());
  model.load_state_dict(checkpoint.model);
}

template <class Model>
std::unique_ptr<nn::Module> made(const nn::ModelConfig& mc, Precision precision) {
  auto model = std::make_unique<Model>(mc);
  model->set_precision(precision);
  return model;
}

}  // namespace

LoadedModel load_model(const std::string& path, const LoadOptions& options) {
  const std::string dir = io::resolve_checkpoint(path);
  return load_model(io::load_checkpoint(dir, /*with_optimizer=*/false), dir, options);
}

LoadedModel load_model(const io::CheckpointData& checkpoint, const std::string& dir,
                       const LoadOptions& options) {
  LoadedModel m{.dir = dir, .config = checkpoint_config(checkpoint, dir, options.overrides)};
  if (options.config) {
    QKV_CHECK(options.config->model.kind == m.config.model.kind,
              "{}: the checkpoint holds a {} model, {} asks for {}", dir,
              enum_name(m.config.model.kind), options.config_source,
              enum_name(options.config->model.kind));
    m.config = *options.config;
  }
  m.vocab = data::Vocab::from_json(checkpoint.vocab, dir + "/vocab.json");
  m.model_config = model_config(m.config, m.vocab.size());
  m.model = make_model(m.model_config, options.precision);
  load_weights(*m.model, checkpoint, dir,
               options.config ? options.config_source : dir + "/config.toml");
  return m;
}

io::Config checkpoint_config(const io::CheckpointData& checkpoint, const std::string& dir,
                             const std::vector<std::string>& overrides) {
  const std::string config_path = dir + "/config.toml";
  io::Config config = io::parse_config(checkpoint.config_toml, config_path, overrides);
  const io::TrainerState state = io::read_trainer_state(checkpoint, dir);
  QKV_CHECK(state.model_kind == config.model.kind,
            "{}: model.kind is {}, but {}/trainer_state.json records model_kind {} for these "
            "weights; this config.toml does not belong to them",
            config_path, enum_name(config.model.kind), dir, enum_name(state.model_kind));
  return config;
}

nn::ModelConfig model_config(const io::Config& c, int64_t vocab_size) {
  nn::ModelConfig m = c.model;
  m.vocab_size = vocab_size;
  m.seed = static_cast<uint64_t>(c.train.seed);
  m.validate();
  return m;
}

std::unique_ptr<nn::Module> make_model(const nn::ModelConfig& mc, Precision precision) {
  cost::check_model_fits(mc);
  switch (mc.kind) {
    case nn::ModelKind::decoder:
      return made<nn::DecoderModel>(mc, precision);
    case nn::ModelKind::encoder:
      return made<nn::EncoderModel>(mc, precision);
    case nn::ModelKind::encoder_decoder:
      return made<nn::EncoderDecoderModel>(mc, precision);
  }
  throw Error("make_model: unknown model kind");
}

}  // namespace qkv::load
