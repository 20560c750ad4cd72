// LmHead: the models' output projection, logits = h·Wᵀ, with W its own `weight` [V, C] drawn
// like a Linear's, or, with tie_weights, the token embedding's weight (then it holds no
// parameter).
#pragma once

#include "qkv/nn/context.h"
#include "qkv/nn/embedding.h"
#include "qkv/nn/model_config.h"
#include "qkv/nn/module.h"

namespace qkv::nn {

class LmHead : public Module {
 public:
  LmHead(const ModelConfig& config, const Embedding& tok_emb, Rng& init_rng);

  Tensor forward(const Context& ctx, const Tensor& h) const;  // h: [..., C] -> [..., V]

 private:
  Tensor weight_;
};

}  // namespace qkv::nn
