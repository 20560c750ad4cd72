// Self- and cross-attention modules: projections, KV cache bookkeeping, and the fused op.
#include "qkv/nn/attention.h"

#include "ops/attention.h"
#include "ops/residual_attention.h"
#include "qkv/error.h"
#include "qkv/ops.h"

namespace qkv::nn {

MultiHeadAttention::MultiHeadAttention(int64_t C, int64_t n_head, bool causal, bool bias,
                                       float dropout, Rng* dropout_rng, Rng& init_rng,
                                       float proj_stddev)
    : C_(C),
      n_head_(n_head),
      causal_(causal),
      dropout_(dropout),
      dropout_rng_(dropout_rng),
      qkv_(submodule<Linear>("qkv", C, 3 * C, bias, init_rng)),
      proj_(submodule<Linear>("proj", C, C, bias, init_rng, proj_stddev)),
      drop_(submodule<Dropout>("drop", dropout, dropout_rng)) {
  QKV_CHECK(n_head > 0 && C % n_head == 0, "attention: {} channels do not split into {} heads", C,
            n_head);
}

Tensor MultiHeadAttention::forward(const Tensor& x, const Tensor& key_padding,
                                   KVCache* cache) const {
  AttentionOptions options{.causal = causal_,
                           .key_padding = key_padding,
                           .dropout = dropout_,
                           .rng = is_training() ? dropout_rng_ : nullptr};
  Tensor y;
  if (!cache && !probs_out_) {
    // Training and full-sequence evaluation: heads read straight from the packed projection.
    y = packed_self_attention(qkv_.forward(x), n_head_, options);
  } else {
    // Decoding keeps k and v apart, to append them to the cache; recording reads q and k.
    const int64_t sizes[] = {C_, C_, C_};
    std::vector<Tensor> qkv = split(qkv_.forward(x), sizes, 2);
    Tensor k = qkv[1], v = qkv[2];
    if (cache) {
      if (cache->k.defined()) {
        k = concat({cache->k, k}, 1);
        v = concat({cache->v, v}, 1);
      }
      cache->k = k;
      cache->v = v;
    }
    if (probs_out_) *probs_out_ = attention_probabilities(qkv[0], k, n_head_, options);
    y = scaled_dot_product_attention(qkv[0], k, v, n_head_, options);
  }
  return drop_.forward(proj_.forward(y));
}

Tensor MultiHeadAttention::forward_residual(const Tensor& x, const LayerNorm& ln,
                                            const Tensor& key_padding) const {
  if (probs_out_) return x + forward(ln.forward(x), key_padding);  // recording needs q and k
  Rng* rng = is_training() ? dropout_rng_ : nullptr;
  AttentionOptions options{
      .causal = causal_, .key_padding = key_padding, .dropout = dropout_, .rng = rng};
  return residual_self_attention(x, ln.weight(), ln.bias(), LayerNorm::kEps, qkv_.weight(),
                                 qkv_.bias(), proj_.weight(), proj_.bias(), n_head_, options,
                                 dropout_, rng);
}

CrossAttention::CrossAttention(int64_t C, int64_t n_head, bool bias, float dropout,
                               Rng* dropout_rng, Rng& init_rng, float proj_stddev)
    : C_(C),
      n_head_(n_head),
      dropout_(dropout),
      dropout_rng_(dropout_rng),
      q_(submodule<Linear>("q", C, C, bias, init_rng)),
      kv_(submodule<Linear>("kv", C, 2 * C, bias, init_rng)),
      proj_(submodule<Linear>("proj", C, C, bias, init_rng, proj_stddev)),
      drop_(submodule<Dropout>("drop", dropout, dropout_rng)) {
  QKV_CHECK(n_head > 0 && C % n_head == 0,
            "cross-attention: {} channels do not split into {} heads", C, n_head);
}

Tensor CrossAttention::forward(const Tensor& x, const Tensor& memory, const Tensor& memory_padding,
                               KVCache* cache) const {
  Tensor k, v;
  if (cache && cache->memory_k.defined()) {
    k = cache->memory_k;
    v = cache->memory_v;
  } else {
    QKV_CHECK(memory.defined(), "cross-attention: no encoder memory given");
    const int64_t sizes[] = {C_, C_};
    std::vector<Tensor> kv = split(kv_.forward(memory), sizes, 2);
    k = kv[0];
    v = kv[1];
    if (cache) {
      cache->memory_k = k;
      cache->memory_v = v;
    }
  }
  AttentionOptions options{.causal = false,
                           .key_padding = memory_padding,
                           .dropout = dropout_,
                           .rng = is_training() ? dropout_rng_ : nullptr};
  const Tensor q = q_.forward(x);
  if (probs_out_) *probs_out_ = attention_probabilities(q, k, n_head_, options);
  Tensor y = scaled_dot_product_attention(q, k, v, n_head_, options);
  return drop_.forward(proj_.forward(y));
}

}  // namespace qkv::nn
