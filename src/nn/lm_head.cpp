// The output projection shared by the three models.
#include "qkv/nn/lm_head.h"

#include "qkv/ops.h"

namespace qkv::nn {

LmHead::LmHead(const ModelConfig& c, const Embedding& tok_emb, Rng& init_rng)
    : weight_(c.tie_weights
                  ? tok_emb.weight()
                  : param("weight", {c.vocab_size, c.n_embd}, Init::normal(init_rng, 0.02f))) {}

Tensor LmHead::forward(const Context& ctx, const Tensor& h) const {
  return linear(h, weight_, {}, ctx.precision);
}

}  // namespace qkv::nn
