// KV cache: decoding position by position (or in chunks) with the cache must give the logits of
// one full forward pass over the whole sequence.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "qkv/autograd.h"
#include "qkv/error.h"
#include "qkv/nn/models.h"

using namespace qkv;
using namespace qkv::nn;

namespace {

// Float32 sums in a different order (T keys at once vs. a growing cache) differ by rounding
// only; 1e-5 is far below the O(0.1) effect of a wrong mask or position.
constexpr float kTol = 1e-5f;

ModelConfig config(ModelKind kind, Norm norm, PosEncoding pos, bool qk_norm = false) {
  return {.kind = kind,
          .vocab_size = 13,
          .n_layer = 2,
          .n_head = 4,
          .n_embd = 32,
          .block_size = 16,
          .bias = true,
          .pos_encoding = pos,
          .norm = norm,
          .seed = 5,
          .qk_norm = qk_norm};
}

std::vector<int32_t> ids_for(int64_t n, int64_t vocab, int32_t salt) {
  std::vector<int32_t> ids(n);
  for (int64_t i = 0; i < n; ++i) ids[i] = int32_t((i * 5 + salt * 7 + i * i) % vocab);
  return ids;
}

// Columns [t0, t0 + n) of a [B, T] id matrix, as a [B, n] matrix.
std::vector<int32_t> columns(const std::vector<int32_t>& ids, int64_t B, int64_t T, int64_t t0,
                             int64_t n) {
  std::vector<int32_t> out;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = t0; t < t0 + n; ++t) out.push_back(ids[b * T + t]);
  return out;
}

// Compares step logits [B, n, V] with positions [t0, t0 + n) of full logits [B, T, V].
void check_matches(const Tensor& step, const Tensor& full, int64_t t0) {
  const int64_t B = full.size(0), T = full.size(1), V = full.size(2), n = step.size(1);
  REQUIRE(step.shape() == Shape{B, n, V});
  float worst = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < n; ++t)
      for (int64_t v = 0; v < V; ++v)
        worst = std::max(worst, std::abs(step.data()[(b * n + t) * V + v] -
                                         full.data()[(b * T + t0 + t) * V + v]));
  CHECK_MESSAGE(worst <= kTol, "positions " << t0 << ".." << t0 + n - 1 << ": max error " << worst);
}

}  // namespace

TEST_CASE("kv cache: decoder, one position at a time and in chunks, equals the full pass") {
  // rope: the cache keeps keys rotated at their own positions, and a query is rotated at its.
  for (Norm norm : {Norm::pre, Norm::post})
    for (PosEncoding pos : {PosEncoding::learned, PosEncoding::sinusoidal, PosEncoding::rope}) {
      CAPTURE(int(norm));
      CAPTURE(int(pos));
      DecoderModel m(config(ModelKind::decoder, norm, pos, pos == PosEncoding::rope));
      NoGradGuard no_grad;
      const int64_t B = 2, T = 11;
      const std::vector<int32_t> ids = ids_for(B * T, 13, 1);
      const Tensor full = m.logits(ids, B, T);

      std::vector<LayerCache> cache;
      for (int64_t t = 0; t < T; ++t)
        check_matches(m.logits(columns(ids, B, T, t, 1), B, 1, &cache, t), full, t);
      CHECK(cache.size() == 2);
      CHECK(cache[1].self.length == T);

      // A prompt of 4, then 1, then 6: queries see a longer cache (bottom-right causal mask).
      std::vector<LayerCache> chunked;
      int64_t t0 = 0;
      for (int64_t n : {4, 1, 6}) {
        check_matches(m.logits(columns(ids, B, T, t0, n), B, n, &chunked, t0), full, t0);
        t0 += n;
      }
    }
}

TEST_CASE("kv cache: encoder-decoder decode step by step equals the full decode") {
  for (Norm norm : {Norm::pre, Norm::post}) {
    CAPTURE(int(norm));
    // Post-norm with rope and qk_norm (the cross-attention's cached keys normalised once).
    const bool rope = norm == Norm::post;
    EncoderDecoderModel m(config(ModelKind::encoder_decoder, norm,
                                 rope ? PosEncoding::rope : PosEncoding::learned, rope));
    NoGradGuard no_grad;
    const int64_t B = 2, Ts = 9, Tt = 7;
    const std::vector<int32_t> src = ids_for(B * Ts, 13, 2), tgt = ids_for(B * Tt, 13, 3);
    std::vector<float> pad(B * Ts, 0.0f);
    pad[Ts + 7] = pad[Ts + 8] = 1.0f;  // the second source ends in two padding positions
    const Tensor src_padding = Tensor::from_vector({B, Ts}, pad);
    const Tensor memory = m.encode(src, B, Ts, src_padding);
    const Tensor full = m.decode(memory, src_padding, tgt, B, Tt);

    std::vector<LayerCache> cache;
    for (int64_t t = 0; t < Tt; ++t)
      check_matches(m.decode(memory, src_padding, columns(tgt, B, Tt, t, 1), B, 1, &cache, t), full,
                    t);
    CHECK(cache[0].cross.kv.shape() == Shape{B, Ts, 64});  // keys and values of 32 channels
  }
}

TEST_CASE("kv cache: a pos_offset that disagrees with the cache is an error") {
  DecoderModel m(config(ModelKind::decoder, Norm::pre, PosEncoding::learned));
  NoGradGuard no_grad;
  std::vector<LayerCache> cache;
  const std::vector<int32_t> ids = {1, 2, 3};
  m.logits(ids, 1, 3, &cache, 0);
  try {
    m.logits(std::span(ids).first(1), 1, 1, &cache, 2);
    FAIL("accepted a wrong pos_offset");
  } catch (const Error& e) {
    CHECK(std::string(e.what()) == "decoder: KV cache holds 3 positions but pos_offset is 2");
  }
}
