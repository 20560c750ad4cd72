// The heads of attention, one block of query rows (forward) or one head (backward) per call,
// each on the calling thread alone (attention_heads.h). Scores are tiles of kRows x kKeys from one
// GEMM each; with the causal mask, the tiles above the diagonal of a block are never computed.
#include "ops/attention_heads.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "ops/gemm.h"
#include "ops/small_gemm.h"
#include "ops/vecmath.h"

namespace qkv::attention_heads {
namespace {

constexpr float kMasked = -std::numeric_limits<float>::infinity();

// Query i sees keys [0, visible_keys(i)) that are not padding: bottom-right aligned, so decoding
// the last Tq positions against a cache of Tk keys masks exactly as the whole sequence would.
int64_t visible_keys(const Layout& l, int64_t i) {
  return l.causal ? std::clamp<int64_t>(i + l.Tk - l.Tq + 1, 0, l.Tk) : l.Tk;
}

// Head (b, h) of the inputs: its first q, k and v rows, its padding row and where its dropout
// mask starts (element (i, j) of the head is mask + i·Tk + j).
template <class H>
struct Head {
  const H *q, *k, *v;
  const float* pad;
  uint64_t mask0;
};

template <class H>
Head<H> head(const Inputs<H>& in, const Layout& l, int64_t b, int64_t h) {
  const int64_t qo = b * l.sq + h * l.HS, ko = b * l.sk + h * l.HS;
  return {in.q + qo, in.k + ko, in.v + ko, in.pad ? in.pad + b * l.Tk : nullptr,
          static_cast<uint64_t>((b * l.NH + h) * l.Tq * l.Tk)};
}

// C = alpha·op(A)·op(B) + beta·C for the heads: in fp32 by gemm_small (`pack`: `room` floats for
// a transposed B), in bf16 by gemm_ld.
template <class H>
void product(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const H* A,
             int64_t lda, const H* B, int64_t ldb, float beta, float* C, int64_t ldc, float* pack,
             int64_t room) {
  if constexpr (std::is_same_v<H, float>) {
    if (!tb || K * N <= room)
      return gemm_small(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, pack);
  }
  gemm_ld(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// A tile of [rows, w] (row stride ld) as a GEMM operand of type H: the tile itself for floats,
// else rounded into `to` (the same layout).
template <class H>
const H* operand(const float* tile, float* to, int64_t rows, int64_t w, int64_t ld) {
  if constexpr (std::is_same_v<H, float>) {
    return tile;
  } else {
    H* t = reinterpret_cast<H*>(to);
    for (int64_t r = 0; r < rows; ++r) convert(t + r * ld, tile + r * ld, w);
    return t;
  }
}

// s: [rows, w] of row stride ld = q·kᵀ/√HS of query rows [i0, i0 + rows) and keys
// [j0, j0 + w), -inf where a key is masked for its row; pack: `room` floats (see product).
template <class H>
void scores(float* s, int64_t ld, const Head<H>& hd, const Layout& l, int64_t i0, int64_t rows,
            int64_t j0, int64_t w, float* pack, int64_t room) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(l.HS));
  product(false, true, rows, w, l.HS, scale, hd.q + i0 * l.ldq, l.ldq, hd.k + j0 * l.ldk, l.ldk,
          0.0f, s, ld, pack, room);
  for (int64_t r = 0; r < rows; ++r) {
    float* sr = s + r * ld;
    const int64_t n = std::clamp<int64_t>(visible_keys(l, i0 + r) - j0, 0, w);
    std::fill(sr + n, sr + w, kMasked);
    if (hd.pad)
      for (int64_t j = 0; j < n; ++j)
        if (hd.pad[j0 + j] != 0.0f) sr[j] = kMasked;
  }
}

// In place over a row of scores s: [w]: e^(s - shift), 0 where s is masked.
void exp_row(float* s, int64_t w, float shift) {
  for (int64_t j = 0; j < w; ++j) s[j] = s[j] == kMasked ? 0.0f : vecmath::exp(s[j] - shift);
}

// to[j] = from[j]·M(e0 + j) for a row of w; the mask is recomputed, never stored.
void drop_row(float* to, const float* from, int64_t w, DropoutMask m, uint64_t e0) {
  for (int64_t j = 0; j < w; ++j) to[j] = from[j] * m(e0 + static_cast<uint64_t>(j));
}

}  // namespace

// Online softmax over the key tiles: each row keeps its running max m and sum l of e^(s - m);
// a new tile with a larger max rescales both and the output row by e^(m_old - m_new). The
// dropout mask scales the probabilities that multiply v, not l (the softmax is of s alone).
// At the end o = o / l and lse = m + log l.
template <class H>
void forward(float* o, float* lse, const Inputs<H>& in, const Layout& l, int64_t b, int64_t h,
             int64_t blk, float* scratch) {
  const Head<H> hd = head(in, l, b, h);
  const int64_t C = l.NH * l.HS, i0 = blk * kRows, rows = std::min(kRows, l.Tq - i0);
  const int64_t n1 = visible_keys(l, i0 + rows - 1);  // the keys any row of the block sees
  float* O = o + (b * l.Tq + i0) * C + h * l.HS;
  float* L = lse + (b * l.NH + h) * l.Tq + i0;
  float m[kRows], sum[kRows];
  std::fill_n(m, rows, kMasked);
  std::fill_n(sum, rows, 0.0f);
  float *s = scratch, *pack = scratch + 2 * kRows * kKeys;
  const int64_t room = kScratch - 2 * kRows * kKeys;
  for (int64_t j0 = 0; j0 < n1; j0 += kKeys) {
    const int64_t w = std::min(kKeys, n1 - j0);
    scores(s, kKeys, hd, l, i0, rows, j0, w, pack, room);
    for (int64_t r = 0; r < rows; ++r) {
      float* sr = s + r * kKeys;
      const float mx = std::max(m[r], vecmath::lane_max(sr, w));
      if (mx == kMasked) {  // no key seen yet: nothing to add
        std::fill_n(sr, w, 0.0f);
        continue;
      }
      const float carry = m[r] == kMasked ? 0.0f : vecmath::exp(m[r] - mx);
      exp_row(sr, w, mx);
      sum[r] = sum[r] * carry + vecmath::lane_sum(sr, w);
      m[r] = mx;
      if (j0 > 0 && carry != 1.0f)
        for (int64_t d = 0; d < l.HS; ++d) O[r * C + d] *= carry;
      if (in.mask) drop_row(sr, sr, w, *in.mask, hd.mask0 + uint64_t((i0 + r) * l.Tk + j0));
    }
    const H* P = operand<H>(s, scratch + kRows * kKeys, rows, w, kKeys);
    product(false, false, rows, l.HS, w, 1.0f, P, kKeys, hd.v + j0 * l.ldk, l.ldk,
            j0 == 0 ? 0.0f : 1.0f, O, C, pack, room);
  }
  for (int64_t r = 0; r < rows; ++r) {
    float* orow = O + r * C;
    if (sum[r] == 0.0f) {  // the row sees no key (sum holds at least e^0 otherwise)
      std::fill_n(orow, l.HS, 0.0f);
      L[r] = kMasked;
      continue;
    }
    const float inv = 1.0f / sum[r];
    for (int64_t d = 0; d < l.HS; ++d) orow[d] *= inv;
    L[r] = m[r] + std::log(sum[r]);
  }
}

template <class H>
void probabilities(float* p, const float* lse, const Inputs<H>& in, const Layout& l, int64_t b,
                   int64_t h, int64_t blk) {
  const Head<H> hd = head(in, l, b, h);
  const int64_t i0 = blk * kRows, rows = std::min(kRows, l.Tq - i0);
  const int64_t n1 = visible_keys(l, i0 + rows - 1);
  float* P = p + ((b * l.NH + h) * l.Tq + i0) * l.Tk;
  const float* L = lse + (b * l.NH + h) * l.Tq + i0;
  scores(P, l.Tk, hd, l, i0, rows, 0, n1, nullptr, 0);  // no room to pack: through BLAS
  for (int64_t r = 0; r < rows; ++r) {
    exp_row(P + r * l.Tk, n1, L[r]);  // masked keys are -inf: 0
    std::fill(P + r * l.Tk + n1, P + (r + 1) * l.Tk, 0.0f);
  }
}

// With S = q·kᵀ/√HS, P = softmax(S) = e^(S - lse), A = P∘M and o = A·v:
//   dv = Aᵀ·do;  dP = (do·vᵀ)∘M;  dS = P∘(dP - D) with D = rowsum(dP∘P) = rowsum(do∘o);
//   dq = dS·k/√HS;  dk = dSᵀ·q/√HS.
// FlashAttention-2's order: tiles of keys outside, chunks of the query rows that see them
// inside, so dk and dv of a tile are summed over its rows in the GEMMs themselves (their inner
// dimension is the rows: large products, few calls) and written once; dq adds up over the
// tiles. A tile has as many keys as a head has channels (32 to 128), so the GEMMs' shapes stay
// balanced (measurements: docs/kernels.md). P is recomputed from lse. Each head is one thread's
// work, so the result does not depend on the thread count. Masked keys have P = 0, so they get dS =
// 0 with no mask test.
template <class H>
void backward(float* dq, float* dk, float* dv, const H* dout, const float* o, const float* lse,
              const Inputs<H>& in, const Layout& l, int64_t b, int64_t h, float* scratch) {
  const Head<H> hd = head(in, l, b, h);
  const int64_t C = l.NH * l.HS, HS = l.HS, kCols = std::clamp<int64_t>(HS, 32, kMaxCols);
  const int64_t tile = kChunk * kMaxCols;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  float* dQ = dq + b * l.sq + h * HS;
  float* dK = dk + b * l.sk + h * HS;
  float* dV = dv + b * l.sk + h * HS;
  for (int64_t i = 0; i < l.Tq; ++i) std::fill_n(dQ + i * l.ldq, HS, 0.0f);
  // Tiles: s (scores, then P), g (dP, then dS), a (P∘M), and for bf16 operands t: P∘M and dS
  // rounded (half a float tile each).
  float *s = scratch, *g = s + tile, *a = g + tile, *t = a + tile;
  float D[kChunk];
  const float* L = lse + (b * l.NH + h) * l.Tq;
  for (int64_t j0 = 0; j0 < l.Tk; j0 += kCols) {
    const int64_t w = std::min(kCols, l.Tk - j0);
    // The first query that sees key j0 (causal); the last query sees every key.
    const int64_t first = l.causal ? std::max<int64_t>(0, j0 - (l.Tk - l.Tq)) : 0;
    for (int64_t c0 = first; c0 < l.Tq; c0 += kChunk) {
      const int64_t rows = std::min(kChunk, l.Tq - c0);
      const float beta_kv = c0 == first ? 0.0f : 1.0f;
      const H* dO = dout + (b * l.Tq + c0) * C + h * HS;
      const float* O = o + (b * l.Tq + c0) * C + h * HS;
      scores(s, kCols, hd, l, c0, rows, j0, w, t, tile);
      for (int64_t r = 0; r < rows; ++r) {
        exp_row(s + r * kCols, w, L[c0 + r]);  // a row that sees no key is all -inf: zeros
        D[r] = vecmath::lane_sum_of(HS,
                                    [&](int64_t d) { return float(dO[r * C + d]) * O[r * C + d]; });
      }
      const float* A32 = s;
      if (in.mask) {
        for (int64_t r = 0; r < rows; ++r)
          drop_row(a + r * kCols, s + r * kCols, w, *in.mask,
                   hd.mask0 + uint64_t((c0 + r) * l.Tk + j0));
        A32 = a;
      }
      const H* A = operand<H>(A32, t, rows, w, kCols);
      product(true, false, w, HS, rows, 1.0f, A, kCols, dO, C, beta_kv, dV + j0 * l.ldk, l.ldk, t,
              tile);
      product(false, true, rows, w, HS, 1.0f, dO, C, hd.v + j0 * l.ldk, l.ldk, 0.0f, g, kCols, t,
              tile);
      for (int64_t r = 0; r < rows; ++r) {
        float* gr = g + r * kCols;
        const float* pr = s + r * kCols;
        if (in.mask) drop_row(gr, gr, w, *in.mask, hd.mask0 + uint64_t((c0 + r) * l.Tk + j0));
        for (int64_t j = 0; j < w; ++j) gr[j] = pr[j] * (gr[j] - D[r]);
      }
      const H* dS = operand<H>(g, t + tile / 2, rows, w, kCols);
      product(false, false, rows, HS, w, scale, dS, kCols, hd.k + j0 * l.ldk, l.ldk, 1.0f,
              dQ + c0 * l.ldq, l.ldq, t, tile);
      product(true, false, w, HS, rows, scale, dS, kCols, hd.q + c0 * l.ldq, l.ldq, beta_kv,
              dK + j0 * l.ldk, l.ldk, t, tile);
    }
  }
}

template void forward(float*, float*, const Inputs<float>&, const Layout&, int64_t, int64_t,
                      int64_t, float*);
template void forward(float*, float*, const Inputs<bf16>&, const Layout&, int64_t, int64_t, int64_t,
                      float*);
template void probabilities(float*, const float*, const Inputs<float>&, const Layout&, int64_t,
                            int64_t, int64_t);
template void probabilities(float*, const float*, const Inputs<bf16>&, const Layout&, int64_t,
                            int64_t, int64_t);
template void backward(float*, float*, float*, const float*, const float*, const float*,
                       const Inputs<float>&, const Layout&, int64_t, int64_t, float*);
template void backward(float*, float*, float*, const bf16*, const float*, const float*,
                       const Inputs<bf16>&, const Layout&, int64_t, int64_t, float*);

}  // namespace qkv::attention_heads
