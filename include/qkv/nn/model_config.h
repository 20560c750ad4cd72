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
// learned and sinusoidal vectors are added to the token embeddings; rope rotates q and k of
// self-attention instead (qkv::Rotary), with no position vectors.
enum class PosEncoding { learned, sinusoidal, rope };
using qkv::Norm;  // the norm before each sublayer (GPT-2) or after the residual (ops.h)
using qkv::NormType;    // layernorm or rmsnorm (ops.h)
using qkv::Activation;  // the MLP's: gelu, relu2 or swiglu (ops.h)

// Their names in config files and messages (see qkv/enum_names.h).
constexpr EnumNames<3> enum_names(ModelKind) { return {"decoder", "encoder", "encoder_decoder"}; }
constexpr EnumNames<3> enum_names(PosEncoding) { return {"learned", "sinusoidal", "rope"}; }

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
  int64_t ffn_hidden = 0;   // 0 = 4·n_embd (swiglu: see ffn())
  uint64_t seed = 1337;     // of the init; train::model_config copies train.seed
  double rope_base = 10000.0;  // of PosEncoding::rope's angles
  NormType norm_type = NormType::layernorm;
  bool qk_norm = false;  // q and k of every attention head RMS-normalised, before the rotation
  Activation activation = Activation::gelu;
  bool zero_init_proj = false;  // attention's and the MLP's output projections start at zero

  // The MLP's hidden width. swiglu's default, 8/3·n_embd rounded up to a multiple of 64, gives
  // its three matrices about the parameters of the two of a 4·n_embd MLP.
  int64_t ffn() const {
    if (ffn_hidden > 0) return ffn_hidden;
    return activation == Activation::swiglu ? (8 * n_embd + 191) / 192 * 64 : 4 * n_embd;
  }
  int64_t head_size() const { return n_embd / n_head; }
  // The init of the projections that feed the residual stream, which every layer adds to:
  // GPT-2's, or zero (zero_init_proj).
  float residual_proj_stddev() const {
    return zero_init_proj ? 0.0f : 0.02f / std::sqrt(2.0f * float(n_layer));
  }
  // The rules on the keys of a [model] table: throws qkv::Error naming the first bad key
  // ("model.n_embd = 130 is not divisible by model.n_head = 6"), led by at(key) when given, where
  // a config set it ("c.toml:9").
  void check_keys(const std::function<std::string(const char* key)>& at = {}) const;
  // check_keys, and a vocabulary (which a config file does not hold).
  void validate() const;
};

}  // namespace qkv::nn
