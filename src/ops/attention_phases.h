// Internal: the attention node's kernels (ops/attention.cpp). The forward has three phases, each
// split over the threads in contiguous blocks (Share):
//   1. rows of x: the norm (pre) and x's projection (q, k, v, or q); rows of the memory: its
//      projection (k, v); q and k normalised and rotated (ops/attention_qk.h) when asked; with a
//      cache, the new keys and values are appended to it;
//   2. blocks of query rows of every head (attention_heads.h);
//   3. rows: the output projection, dropout, the residual add and the norm (post).
// The backward runs them in reverse, each head whole on one thread, then the weight gradients
// by blocks of output features. Each phase reads and writes through a Plan of pointers.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include "ops/attention_heads.h"
#include "ops/attention_qk.h"
#include "ops/sublayer.h"
#include "qkv/autograd.h"

namespace qkv::attention_phases {

namespace heads = attention_heads;

// B batch, Tq rows of x per batch element, Tk keys, C channels, NH heads; Fi: the width of x's
// projection (3C for self-attention, C for cross-attention).
struct Dims {
  int64_t B, Tq, Tk, C, NH, Fi;
  int64_t N() const { return B * Tq; }
  int64_t M() const { return B * Tk; }
};

// One call's pointers: inputs, weights, what the forward computes (and the backward keeps), with
// the projections' GEMM operands of type T (float, or bf16) and the heads' of type H (T, but
// float with a KV cache, which holds fp32 keys and values).
template <class T, class H>
struct Plan {
  Dims d;
  sublayer::Wrap<T> wrap;
  const float* x;
  const T* in;          // the input of x's projection (sublayer::Wrap::u)
  const float* memory;  // [B·Tk, C] to project, or null (self, or a cached projection)
  T* memory_t;          // memory as an operand (bf16: rounded here); null without memory
  const T *w_in, *w_mem, *w_out;
  const float *b_in, *b_mem, *b_out;
  H* qi;         // x's projection [N, Fi]
  H* kv;         // the memory's projection [B·Tk, 2C], or null
  float* cache;  // self-attention with a cache: its kv at position `cached` of batch 0
  int64_t cached, capacity;
  float *y, *lse;        // the heads' output [N, C] and log-sum-exps [B, NH, Tq]
  T* y_t;                // y as an operand (bf16: rounded here)
  float* probabilities;  // [B, NH, Tq, Tk], or null
  heads::Layout layout;
  heads::Inputs<H> inputs;
  float* scratch;  // [threads, heads::kScratch]
  attention_qk::Transform qk;  // q and k between the projections and the heads
  float *q_rstd, *k_rstd;      // qk_norm: [N, NH], [keys projected here, NH]; else null
};

// Rows [r0, r1) of out = in·Wᵀ + b: [rows, N] (of type O) from in: [rows, I], W: [N, I],
// b: [N] or null.
template <class T, class O>
void project(O* out, const T* in, const T* W, const float* b, int64_t I, int64_t N, int64_t r0,
             int64_t r1) {
  gemm_ld(false, true, r1 - r0, N, I, 1.0f, in + r0 * I, I, W, I, 0.0f, out + r0 * N, N, b);
}

// Thread t's share of a phase's units, `per` of them per sequence (rows of x: Tq; of the memory:
// Tk; the heads' items: NH·blocks). When the threads split the sequences evenly, each takes
// whole sequences in every phase: it reads in one phase only what it wrote in the one before,
// so the phases need no barrier between them. Otherwise each phase splits on its own, fenced.
struct Share {
  int64_t B;
  int t, parts;
  bool fenced() const { return B % parts != 0; }
  std::pair<int64_t, int64_t> of(int64_t per) const {
    if (fenced()) return block(B * per, t, parts);
    const auto [b0, b1] = block(B, t, parts);
    return {b0 * per, b1 * per};
  }
};

// Item it of the heads' items in (b, h, rest) order, with `per` items per head.
struct Item {
  int64_t b, h, rest;
};
Item item(const Dims& d, int64_t it, int64_t per) {
  return {it / (d.NH * per), it / per % d.NH, it % per};
}

// Where q and k of a projection are (ops/attention_qk.h): x's projection qi [N, Fi] (q; k at
// channel C in self-attention), the memory's kv [B·Tk, 2C] (k).
template <class T, class H>
attention_qk::Rows qi_rows(const Plan<T, H>& p) {
  return {p.d.Fi, p.d.NH, p.d.C / p.d.NH, p.d.Tq, p.cached};
}
template <class T, class H>
attention_qk::Rows kv_rows(const Plan<T, H>& p) {
  return {2 * p.d.C, p.d.NH, p.d.C / p.d.NH, p.d.Tk, 0};
}

// Head (b, h) of the q/k transform's backward: dqi's q (and k) columns, or dkv's k columns
// (cross-attention, no rotation), turned into the projections' gradients in place.
template <class T, class H>
void qk_backward(float* dqi, float* dkv, const Plan<T, H>& p, int64_t b, int64_t h) {
  const Dims& d = p.d;
  attention_qk::backward_head(dqi, p.qi, p.q_rstd, qi_rows(p), p.qk, h, b * d.Tq, (b + 1) * d.Tq);
  if (dkv)
    attention_qk::backward_head(dkv, p.kv, p.k_rstd, kv_rows(p), p.qk.without_rotation(), h,
                                b * d.Tk, (b + 1) * d.Tk);
  else
    attention_qk::backward_head(dqi + d.C, p.qi + d.C, p.k_rstd, qi_rows(p), p.qk, h, b * d.Tq,
                                (b + 1) * d.Tq);
}

template <class T, class H>
void forward_phases(float* out, const Plan<T, H>& p, int t, int parts) {
  const Dims& d = p.d;
  const int64_t C = d.C;
  const Share share{d.B, t, parts};
  const auto [r0, r1] = share.of(d.Tq);
  {
    sublayer::input_forward(p.wrap, p.x, r0, r1);
    project(p.qi, p.in, p.w_in, p.b_in, C, d.Fi, r0, r1);
    if (p.qk.any()) {  // before the cache keeps the keys
      attention_qk::forward(p.qi, p.q_rstd, qi_rows(p), p.qk, r0, r1);
      if (d.Fi != C) attention_qk::forward(p.qi + C, p.k_rstd, qi_rows(p), p.qk, r0, r1);
    }
    if constexpr (sublayer::is_float<H>)  // a cache holds fp32 (see Plan)
      if (p.cache)
        for (int64_t r = r0; r < r1; ++r)
          std::copy_n(p.qi + r * d.Fi + C, 2 * C,
                      p.cache + ((r / d.Tq) * p.capacity + r % d.Tq) * 2 * C);
    const auto [m0, m1] = share.of(d.Tk);
    if (p.memory) {
      project(p.kv, sublayer::operand(p.memory, p.memory_t, C, m0, m1), p.w_mem, p.b_mem, C, 2 * C,
              m0, m1);
      if (p.qk.norm)
        attention_qk::forward(p.kv, p.k_rstd, kv_rows(p), p.qk.without_rotation(), m0, m1);
    }
  }
  if (share.fenced()) {
#pragma omp barrier
  }
  {
    const int64_t blocks = heads::row_blocks(p.layout);
    const auto [i0, i1] = share.of(d.NH * blocks);
    float* scratch = p.scratch + t * heads::kScratch;
    for (int64_t it = i0; it < i1; ++it) {
      const Item i = item(d, it, blocks);
      heads::forward(p.y, p.lse, p.inputs, p.layout, i.b, i.h, i.rest, scratch);
      if (p.probabilities)
        heads::probabilities(p.probabilities, p.lse, p.inputs, p.layout, i.b, i.h, i.rest);
    }
  }
  if (share.fenced()) {
#pragma omp barrier
  }
  {
    const T* y = sublayer::operand(p.y, p.y_t, C, r0, r1);
    const float beta = sublayer::output_prefill(out, p.x, p.wrap, r0, r1);
    gemm_ld(false, true, r1 - r0, C, C, 1.0f, y + r0 * C, C, p.w_out, C, beta, out + r0 * C, C,
            p.b_out);
    sublayer::output_forward(out, p.x, p.wrap, r0, r1);
  }
}

// Where the backward puts the gradients, and its scratch: dres, dz: [N, C] (see
// sublayer::output_backward); dy: [N, C], the heads' operand; dqi: [N, Fi]; dkv: [B·Tk, 2C]
// (cross); du: [N, C]; lnp: [threads, 2C]; dz_t, dqi_t, dkv_t: dz, dqi and dkv as GEMM operands
// (bf16 only).
template <class T, class H>
struct Grads {
  GradOut dx, dmem, dw_in, db_in, dw_mem, db_mem, dw_out, db_out, dlw, dlb;
  float *dres, *dz, *dqi, *dkv, *du, *lnp;
  H* dy;
  T *dz_t, *dqi_t, *dkv_t;
};

// With z = y·w_outᵀ + b_out, qi = in·w_inᵀ + b_in and kv = memory·w_memᵀ + b_mem:
//   dz from dout (sublayer.h);  dy = dz·w_out;  the heads give dqi (and dkv) from dy;
//   du = dqi·w_in, then dx (sublayer.h);  dmemory += dkv·w_mem;
//   dw_out += dzᵀ·y;  dw_in += dqiᵀ·in;  dw_mem += dkvᵀ·memory;  the biases sum the rows.
template <class T, class H>
void backward_phases(const Grads<T, H>& g, const float* dout, const Plan<T, H>& p, int t,
                     int parts) {
  const Dims& d = p.d;
  const int64_t C = d.C;
  const bool ln_grads = g.dlw || g.dlb;
  float* lnp = ln_grads ? g.lnp + t * 2 * C : nullptr;
  if (lnp) std::fill_n(lnp, 2 * C, 0.0f);
  const Share share{d.B, t, parts};
  const auto [r0, r1] = share.of(d.Tq);
  const auto [dres, dz] = sublayer::output_backward(g.dres, g.dz, lnp, dout, p.wrap, r0, r1);
  const T* dz_t = sublayer::operand(dz, g.dz_t, C, r0, r1);
  gemm_ld(false, false, r1 - r0, C, C, 1.0f, dz_t + r0 * C, C, p.w_out, C, 0.0f, g.dy + r0 * C, C);
  if (share.fenced()) {
#pragma omp barrier
  }
  {
    const auto [i0, i1] = share.of(d.NH);
    const bool cross = g.dkv != nullptr;
    float* dk = cross ? g.dkv : g.dqi + C;
    for (int64_t it = i0; it < i1; ++it) {
      const Item i = item(d, it, 1);
      heads::backward(g.dqi, dk, dk + C, g.dy, p.y, p.lse, p.inputs, p.layout, i.b, i.h,
                      p.scratch + t * heads::kScratch);
      if (p.qk.any()) qk_backward(g.dqi, g.dkv, p, i.b, i.h);
    }
  }
  if (share.fenced()) {
#pragma omp barrier
  }
  const T* dqi = sublayer::operand(g.dqi, g.dqi_t, d.Fi, r0, r1);
  if (g.dx || (p.wrap.norm == Norm::pre && ln_grads)) {
    gemm_ld(false, false, r1 - r0, C, d.Fi, 1.0f, dqi + r0 * d.Fi, d.Fi, p.w_in, C, 0.0f,
            g.du + r0 * C, C);
    sublayer::input_backward(g.dx, lnp, g.du, dres, p.x, p.wrap, r0, r1);
  }
  const T* dkv = nullptr;
  if (g.dkv) {  // after dx: x may be the memory (by sequence, this thread wrote those rows)
    if (g.dmem && share.fenced()) {
#pragma omp barrier
    }
    const auto [m0, m1] = share.of(d.Tk);
    dkv = sublayer::operand(g.dkv, g.dkv_t, 2 * C, m0, m1);
    if (g.dmem)
      gemm_ld(false, false, m1 - m0, C, 2 * C, 1.0f, dkv + m0 * 2 * C, 2 * C, p.w_mem, C,
              g.dmem.beta(), g.dmem.data + m0 * C, C);
  }
#pragma omp barrier
  const auto [f0, f1] = block(d.Fi, t, parts);
  sublayer::weight_grads(g.dw_in, g.db_in, g.dqi, dqi, d.Fi, p.in, d.N(), C, f0, f1);
  const auto [k0, k1] = block(2 * C, t, parts);
  if (dkv)
    sublayer::weight_grads(g.dw_mem, g.db_mem, g.dkv, dkv, 2 * C, p.memory_t, d.M(), C, k0, k1);
  const auto [c0, c1] = block(C, t, parts);
  sublayer::weight_grads(g.dw_out, g.db_out, dz, dz_t, C, p.y_t, d.N(), C, c0, c1);
  if (ln_grads) sublayer::norm_grads(g.dlw, g.dlb, g.lnp, parts, C, c0, c1);
}

}  // namespace qkv::attention_phases
