// A checkpoint made ready to run for one request: verified against its manifest, its config
// and vocabulary read, and the model built with its weights. Each request loads its own, so a
// checkpoint saved while another request runs never changes what that one reads.
#pragma once

#include <memory>
#include <string>

#include "qkv/data/vocab.h"
#include "qkv/io/config.h"
#include "qkv/nn/model_config.h"
#include "qkv/nn/module.h"

namespace qkv::serve {

struct LoadedModel {
  std::string dir;
  io::Config config;
  data::Vocab vocab;
  nn::ModelConfig model_config;
  std::unique_ptr<nn::Module> model;
};

// Throws HttpError 500 with the checkpoint's own error (a file that fails verification names
// itself and says what is wrong).
LoadedModel load_model(const std::string& checkpoint_dir, Precision precision);

}  // namespace qkv::serve
