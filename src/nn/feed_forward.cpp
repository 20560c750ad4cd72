// FeedForward: Linear -> GELU -> Linear -> dropout.
#include "qkv/nn/feed_forward.h"

#include "ops/feed_forward.h"
#include "qkv/ops.h"

namespace qkv::nn {

FeedForward::FeedForward(int64_t C, int64_t F, bool bias, float dropout, Rng* dropout_rng,
                         Rng& init_rng, float proj_stddev)
    : fc_(submodule<Linear>("fc", C, F, bias, init_rng)),
      proj_(submodule<Linear>("proj", F, C, bias, init_rng, proj_stddev)),
      drop_(submodule<Dropout>("drop", dropout, dropout_rng)),
      dropout_(dropout),
      dropout_rng_(dropout_rng) {}

Tensor FeedForward::forward(const Tensor& x) const {
  // fc -> GELU -> proj as one fused op (ops/feed_forward.h): the same math, fewer passes.
  return drop_.forward(
      feed_forward(x, fc_.weight(), fc_.bias(), proj_.weight(), proj_.bias()));
}

Tensor FeedForward::forward_residual(const Tensor& x, const LayerNorm& ln) const {
  return residual_feed_forward(x, ln.weight(), ln.bias(), LayerNorm::kEps, fc_.weight(),
                               fc_.bias(), proj_.weight(), proj_.bias(), dropout_,
                               is_training() ? dropout_rng_ : nullptr);
}

}  // namespace qkv::nn
