// A checkpoint made into a ready model: verified against its manifest, its config checked
// against the model kind trainer_state.json records, its vocabulary read, the model built and
// its weights copied in, at a precision. Every command that runs a checkpoint, qkv serve and
// the trainer (resume, --init-from) load through load_model.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qkv/data/vocab.h"
#include "qkv/io/checkpoint.h"
#include "qkv/io/config.h"
#include "qkv/nn/model_config.h"
#include "qkv/nn/module.h"

namespace qkv::load {

struct LoadedModel {
  std::string dir;  // the checkpoint directory
  io::Config config;
  data::Vocab vocab;
  nn::ModelConfig model_config;
  std::unique_ptr<nn::Module> model;
};

struct LoadOptions {
  std::vector<std::string> overrides;  // KEY=VALUE on the checkpoint's config
  // The config of a new run that starts from the checkpoint's weights (train --init-from),
  // named in errors by config_source; without it, the checkpoint's own.
  std::optional<io::Config> config;
  std::string config_source;
  Precision precision = Precision::fp32;
};

// `path` is a checkpoint directory, or a run directory (its latest checkpoint). Errors are one
// qkv::Error naming the file at fault: a file that fails verification, a config.toml that does
// not belong to the weights, or weights that do not fit the model the config describes.
LoadedModel load_model(const std::string& path, const LoadOptions& options = {});
// The same from a checkpoint already read from `dir` (by rank 0 alone, under mpirun).
LoadedModel load_model(const io::CheckpointData& checkpoint, const std::string& dir,
                       const LoadOptions& options = {});

// The config a checkpoint was trained with (its config.toml plus overrides), checked against
// the model kind its trainer_state.json records. Errors name the file.
io::Config checkpoint_config(const io::CheckpointData& checkpoint, const std::string& dir,
                             const std::vector<std::string>& overrides = {});

// config.model with the two values a config file does not hold filled in: vocab_size and the
// seed (train.seed). Validated.
nn::ModelConfig model_config(const io::Config& config, int64_t vocab_size);

// A freshly initialised model of mc.kind computing in `precision`, checked to fit in memory first.
std::unique_ptr<nn::Module> make_model(const nn::ModelConfig& mc, Precision precision);

}  // namespace qkv::load
