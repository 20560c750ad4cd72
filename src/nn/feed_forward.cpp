// FeedForward: its two projections, handed to the MLP sublayer op.
#include "qkv/nn/feed_forward.h"

namespace qkv::nn {

FeedForward::FeedForward(int64_t C, int64_t F, bool bias, Rng& init_rng, float proj_stddev,
                         Activation activation)
    : activation_(activation),
      fc_(submodule<Linear>("fc", C, F, bias, init_rng)),
      gate_(activation == Activation::swiglu ? &submodule<Linear>("gate", C, F, bias, init_rng)
                                             : nullptr),
      proj_(submodule<Linear>("proj", F, C, bias, init_rng, proj_stddev)) {}

Tensor FeedForward::forward(const Context& ctx, const Tensor& x, const Residual& residual) const {
  return mlp(x, {.precision = ctx.precision,
                 .residual = residual,
                 .activation = activation_,
                 .w_fc = fc_.weight(),
                 .b_fc = fc_.bias(),
                 .w_proj = proj_.weight(),
                 .b_proj = proj_.bias(),
                 .w_gate = gate_ ? gate_->weight() : Tensor(),
                 .b_gate = gate_ ? gate_->bias() : Tensor()});
}

}  // namespace qkv::nn
