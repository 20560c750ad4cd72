// Internal: the heads of the attention sublayer (src/ops/attention.cpp), FlashAttention's way
// (Dao et al., 2022) on a CPU. The forward takes a block of query rows across the keys in tiles
// with an online softmax and keeps each row's log-sum-exp, never the probabilities; the backward
// recomputes each tile's probabilities from it. Tiles past the causal mask are skipped. Memory:
// O(B·NH·T) saved, plus kScratch floats of scratch per thread.
#pragma once

#include <algorithm>
#include <cstdint>

#include "ops/dropout_mask.h"

namespace qkv::attention_heads {

// The forward's query rows per block and keys per tile: a tile of scores (32 KiB) and its K and
// V rows stay in a core's L2 cache, while the GEMMs stay large enough for BLAS to run near its
// peak. 32 rows rather than 64 skip more of the causal triangle: a quarter of the heads' work at
// T = 64 (docs/kernels.md).
constexpr int64_t kRows = 32, kKeys = 256;
// The backward's query rows per chunk, and the most keys per tile (see backward).
constexpr int64_t kChunk = 256, kMaxCols = 128;
// Scratch floats one thread needs for forward, probabilities or backward: four tiles.
constexpr int64_t kScratch = 4 * std::max(kRows * kKeys, kChunk* kMaxCols);

// B batch, Tq queries, Tk keys, NH heads of HS channels. q rows have stride ldq (sq between
// batch elements), k and v rows ldk (sk); the output o and its grad have rows of C = NH·HS.
// Head h is columns [h·HS, (h+1)·HS) of each. Query i sees key j only if j <= i + Tk - Tq
// (causal) and the key is not padding.
struct Layout {
  int64_t B, Tq, Tk, NH, HS;
  int64_t ldq, sq, ldk, sk;
  bool causal;
};

// The inputs of one call: q, k, v at head 0 of batch element 0, of type H (float, or bf16: the
// GEMMs then read bf16 operands, the probabilities rounded to bf16 too, and sum in fp32); pad:
// [B, Tk] (nonzero = a key no query sees) or null; mask: dropout on the probabilities [B, NH,
// Tq, Tk], or null. Scores, softmax, outputs and gradients stay fp32.
template <class H>
struct Inputs {
  const H *q, *k, *v;
  const float* pad;
  const DropoutMask* mask;
};

inline int64_t row_blocks(const Layout& l) { return (l.Tq + kRows - 1) / kRows; }

// Query rows of block `blk` of head (b, h): o = softmax(q·kᵀ/√HS + masks)∘M·v, and lse: [B, NH,
// Tq] their log-sum-exps (-inf for a row that sees no key; its output is 0). o: [B, Tq, C].
template <class H>
void forward(float* o, float* lse, const Inputs<H>& in, const Layout& l, int64_t b, int64_t h,
             int64_t blk, float* scratch);

// The same rows' probabilities, from lse (no dropout): p: [B, NH, Tq, Tk], 0 on masked keys.
template <class H>
void probabilities(float* p, const float* lse, const Inputs<H>& in, const Layout& l, int64_t b,
                   int64_t h, int64_t blk);

// Head (b, h)'s gradients from dout (the layout of o, of type H) and the forward's o and lse:
// dq, dk, dv, in the layouts of q, k, v, are written (every element of the head's columns).
template <class H>
void backward(float* dq, float* dk, float* dv, const H* dout, const float* o, const float* lse,
              const Inputs<H>& in, const Layout& l, int64_t b, int64_t h, float* scratch);

}  // namespace qkv::attention_heads
