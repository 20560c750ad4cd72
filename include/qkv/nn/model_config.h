// ModelConfig: everything that fixes a model's architecture, validated in one place. It is the
// [model] table of a run config (io::Config::model), with the config file's defaults.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>

#include "qkv/enum_names.h"
#include "qkv/ops.h"

namespace qkv::nn {

enum class ModelKind { decoder, encoder, encoder_decoder };
enum class PosEncoding { learned, sinusoidal };
using qkv::Norm;  // LayerNorm before each sublayer (GPT-2) or after the residual (ops.h)

// Their names in config files and messages (see qkv/enum_names.h).
constexpr EnumNames<3> enum_names(ModelKind) { return {"decoder", "encoder", "encoder_decoder"}; }
constexpr EnumNames<2> enum_names(PosEncoding) { return {"learned", "sinusoidal"}; }

struct ModelConfig {
  ModelKind kind = ModelKind::decoder;
  int64_t vocab_size = 0;  // not a config key: train::model_config sets it from the vocabulary
  int64_t n_layer = 4;
  int64_t n_head = 4;
  int64_t n_embd = 128;
  int64_t block_size = 64;  // the longest sequence (positions 0..block_size-1)
  double dropout = 0.0;
  bool bias = false;  // biases in Linear and LayerNorm (lm_head never has one)
  PosEncoding pos_encoding = PosEncoding::learned;
  Norm norm = Norm::pre;
  bool tie_weights = true;  // logits use tok_emb.weight; no lm_head parameter
  int64_t ffn_hidden = 0;   // 0 = 4·n_embd
  uint64_t seed = 1337;     // of the init; train::model_config copies train.seed

  int64_t ffn() const { return ffn_hidden > 0 ? ffn_hidden : 4 * n_embd; }
  // GPT-2's init for the projections that feed the residual stream, which every layer adds to.
  float residual_proj_stddev() const { return 0.02f / std::sqrt(2.0f * float(n_layer)); }
  // The rules on the keys of a [model] table: throws qkv::Error naming the first bad key
  // ("model.n_embd = 130 is not divisible by model.n_head = 6"), led by at(key) when given, where
  // a config set it ("c.toml:9").
  void check_keys(const std::function<std::string(const char* key)>& at = {}) const;
  // check_keys, and a vocabulary (which a config file does not hold).
  void validate() const;
};

}  // namespace qkv::nn
