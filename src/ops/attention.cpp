// attention: the multi-head attention sublayer (qkv/ops.h) as one node. The forward has three
// phases, each split over the threads in contiguous blocks (Share):
//   1. rows of x: the norm (pre) and x's projection (q, k, v, or q); rows of the memory: its
//      projection (k, v); with a cache, the new keys and values are appended to it;
//   2. blocks of query rows of every head (attention_heads.h);
//   3. rows: the output projection, dropout, the residual add and the norm (post).
// The backward runs them in reverse, each head whole on one thread, then the weight gradients
// by blocks of output features.
#include <omp.h>

#include <algorithm>
#include <cstdint>

#include "ops/attention_heads.h"
#include "ops/sublayer.h"
#include "qkv/autograd.h"

namespace qkv {
namespace {

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

template <class T, class H>
void forward_phases(float* out, const Plan<T, H>& p, int t, int parts) {
  const Dims& d = p.d;
  const int64_t C = d.C;
  const Share share{d.B, t, parts};
  const auto [r0, r1] = share.of(d.Tq);
  {
    sublayer::input_forward(p.wrap, p.x, r0, r1);
    project(p.qi, p.in, p.w_in, p.b_in, C, d.Fi, r0, r1);
    if constexpr (sublayer::is_float<H>)  // a cache holds fp32 (see Plan)
      if (p.cache)
        for (int64_t r = r0; r < r1; ++r)
          std::copy_n(p.qi + r * d.Fi + C, 2 * C,
                      p.cache + ((r / d.Tq) * p.capacity + r % d.Tq) * 2 * C);
    const auto [m0, m1] = share.of(d.Tk);
    if (p.memory)
      project(p.kv, sublayer::operand(p.memory, p.memory_t, C, m0, m1), p.w_mem, p.b_mem, C, 2 * C,
              m0, m1);
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

// Checks the params against x: [B, Tq, C]; returns the dims.
Dims check(const Tensor& x, const AttentionParams& a) {
  const char* op = "attention";
  QKV_CHECK(x.defined() && x.rank() == 3 && x.numel() > 0, "{}: {}; expected [B, T, C]", op,
            sublayer::describe("x", x));
  const int64_t B = x.size(0), Tq = x.size(1), C = x.size(2);
  QKV_CHECK(a.n_head > 0 && C % a.n_head == 0,
            "{}: C = {} channels of {} do not split into n_head = {} heads", op, C,
            sublayer::describe("x", x), a.n_head);
  sublayer::check_residual(op, a.residual, C);
  const bool cross = a.memory.defined();
  QKV_CHECK(!cross || (a.memory.rank() == 3 && a.memory.size(0) == B && a.memory.size(2) == C &&
                       a.memory.size(1) > 0),
            "{}: {} must be [B, Tk, C] = [{}, Tk, {}] for {}", op,
            sublayer::describe("memory", a.memory), B, C, sublayer::describe("x", x));
  const int64_t Fi = cross ? C : 3 * C;
  sublayer::check_shape(op, "w_in", a.w_in, {Fi, C});
  sublayer::check_shape(op, "b_in", a.b_in, {Fi}, true);
  sublayer::check_shape(op, "w_out", a.w_out, {C, C});
  sublayer::check_shape(op, "b_out", a.b_out, {C}, true);
  int64_t Tk = Tq;
  if (cross) {
    Tk = a.cache && a.cache->kv.defined() ? a.cache->length : a.memory.size(1);
    sublayer::check_shape(op, "w_mem", a.w_mem, {2 * C, C});
    sublayer::check_shape(op, "b_mem", a.b_mem, {2 * C}, true);
  } else {
    QKV_CHECK(!a.w_mem.defined() && !a.b_mem.defined(),
              "{}: w_mem and b_mem project a memory, but no memory is given", op);
    if (a.cache) Tk += a.cache->length;
  }
  if (a.cache && a.cache->kv.defined())
    QKV_CHECK(a.cache->kv.rank() == 3 && a.cache->kv.size(0) == B && a.cache->kv.size(2) == 2 * C,
              "{}: the KV cache holds {}, expected [B, positions, 2C] = [{}, ·, {}]", op,
              a.cache->kv.shape(), B, 2 * C);
  QKV_CHECK(!a.key_padding.defined() || a.key_padding.shape() == Shape({B, Tk}),
            "{}: key_padding is {}, expected [B, Tk] = [{}, {}]", op,
            a.key_padding.defined() ? a.key_padding.shape() : Shape{}, B, Tk);
  const Residual& r = a.residual;
  sublayer::check_distinct(op, {{"ln_weight", r.ln_weight},
                                {"ln_bias", r.ln_bias},
                                {"w_in", a.w_in},
                                {"b_in", a.b_in},
                                {"w_mem", a.w_mem},
                                {"b_mem", a.b_mem},
                                {"w_out", a.w_out},
                                {"b_out", a.b_out}});
  return {B, Tq, Tk, C, a.n_head, Fi};
}

// Makes room in a self-attention cache for T more positions: a new tensor when it is too small
// or shared with a copy (copy on write), keeping the positions it holds.
void reserve(KVCache& cache, int64_t B, int64_t C, int64_t T) {
  const int64_t need = cache.length + T;
  if (cache.kv.defined() && cache.kv.size(1) >= need && cache.kv.impl_ptr().use_count() == 1 &&
      cache.kv.impl()->storage.use_count() == 1)
    return;
  const int64_t held = cache.kv.defined() ? cache.kv.size(1) : 0;
  const int64_t capacity = held >= need ? held : std::max({need, 2 * held, int64_t{64}});
  Tensor grown = Tensor::empty({B, capacity, 2 * C});
  for (int64_t b = 0; b < B && cache.length > 0; ++b)
    std::copy_n(cache.kv.data() + b * cache.kv.size(1) * 2 * C, cache.length * 2 * C,
                grown.data() + b * capacity * 2 * C);
  cache.kv = grown;
}

// The node: the forward, and the backward recorded on its output, with the projections'
// operands of type T.
template <class T, class H>
Tensor run(const Tensor& x, const AttentionParams& a, const Dims& d, DropoutMask attn_mask,
           DropoutMask resid_mask, bool drop, bool grad) {
  const int64_t C = d.C, N = d.N(), NH = d.NH, HS = C / NH;
  constexpr bool f32 = sublayer::is_float<T>;
  const bool cross = a.memory.defined();
  const Residual& res = a.residual;
  const bool pre = res.norm == Norm::pre;
  Tensor u = pre || !f32 ? empty_of<T>(N * C) : Tensor();
  Tensor s = pre ? Tensor() : Tensor::empty({N, C});
  Tensor mean = Tensor::empty({N}), rstd = Tensor::empty({N}), qi = empty_of<H>(N * d.Fi);
  Tensor y = Tensor::empty({N, C}), y_t = f32 ? Tensor() : empty_of<T>(N * C);
  Tensor lse = Tensor::empty({d.B, NH, d.Tq}), out = Tensor::empty(x.shape()), kv, memory_t;
  if (a.probabilities) *a.probabilities = Tensor::empty({d.B, NH, d.Tq, d.Tk});
  KVCache* cache = a.cache;
  const bool memory_cached = cross && cache && cache->kv.defined();
  if (cross && !memory_cached)
    kv = sublayer::is_float<H> ? Tensor::empty({d.B, d.Tk, 2 * C}) : empty_of<H>(d.M() * 2 * C);
  if (cross && !memory_cached && !f32) memory_t = empty_of<T>(d.M() * C);
  if (cross && cache && !memory_cached) *cache = {kv, d.Tk};
  if (!cross && cache) reserve(*cache, d.B, C, d.Tq);
  const int64_t cap = cache ? cache->kv.size(1) : 0;

  Plan<T, H> p{};
  p.d = d;
  p.wrap = {res.norm,
            C,
            res.ln_weight.data(),
            sublayer::data_or_null(res.ln_bias),
            res.eps,
            drop ? &resid_mask : nullptr,
            data_of<T>(u),
            pre ? nullptr : s.data(),
            mean.data(),
            rstd.data()};
  p.x = x.data();
  p.in = p.wrap.u ? p.wrap.u : reinterpret_cast<const T*>(x.data());  // f32 post-norm: x itself
  p.memory = cross && !memory_cached ? a.memory.data() : nullptr;
  p.memory_t = f32 ? (p.memory ? const_cast<T*>(reinterpret_cast<const T*>(p.memory)) : nullptr)
                   : data_of<T>(memory_t);
  p.w_in = sublayer::weight<T>(a.w_in), p.w_out = sublayer::weight<T>(a.w_out);
  p.w_mem = cross && !memory_cached ? sublayer::weight<T>(a.w_mem) : nullptr;
  p.b_in = sublayer::data_or_null(a.b_in), p.b_out = sublayer::data_or_null(a.b_out);
  p.b_mem = sublayer::data_or_null(a.b_mem);
  p.qi = data_of<H>(qi);
  p.kv = cross && !memory_cached ? data_of<H>(kv) : nullptr;
  p.cache = !cross && cache ? cache->kv.data() + cache->length * 2 * C : nullptr;
  p.cached = cache ? cache->length : 0, p.capacity = cap;
  p.y = y.data(), p.lse = lse.data();
  p.y_t = f32 ? reinterpret_cast<T*>(y.data()) : data_of<T>(y_t);
  p.probabilities = a.probabilities ? a.probabilities->data() : nullptr;
  // q, k and v in place: from qi (self), or q from qi and k, v from the memory's projection or
  // the cache (ld 2C, one batch element every capacity rows of a cache).
  const H* keys = cross ? data_of<H>(kv) : data_of<H>(qi) + C;
  if constexpr (sublayer::is_float<H>)
    if (cache) keys = cache->kv.data();
  const int64_t ldk = cross || cache ? 2 * C : 3 * C;
  const int64_t sk = cache ? cap * ldk : d.Tk * ldk;
  p.layout = {d.B, d.Tq, d.Tk, NH, HS, d.Fi, d.Tq * d.Fi, ldk, sk, a.causal};
  p.inputs = {data_of<H>(qi), keys, keys + C, sublayer::data_or_null(a.key_padding),
              drop ? &attn_mask : nullptr};
  const int parts = N * C * d.Fi >= kSplitMin ? omp_get_max_threads() : 1;
  Tensor scratch = Tensor::empty({parts, heads::kScratch});
  p.scratch = scratch.data();
#pragma omp parallel num_threads(parts) if (parts > 1)
  forward_phases(out.data(), p, omp_get_thread_num(), parts);
  if (cache && !cross) cache->length += d.Tq;
  if (!grad) return out;

  p.probabilities = nullptr;
  const Tensor memory = a.memory, pad = a.key_padding;
  record(
      out, "attention",
      {x, a.memory, res.ln_weight, res.ln_bias, a.w_in, a.b_in, a.w_mem, a.b_mem, a.w_out, a.b_out},
      [x, memory, pad, a, u, s, mean, rstd, qi, kv, y, y_t, memory_t, lse, p, attn_mask, resid_mask,
       parts](const float* dout, GradOuts grads) {
        const Residual& r = a.residual;
        const Dims& d = p.d;
        Grads<T, H> g{};  // in record's argument order
        g.dx = grads[0], g.dmem = grads[1], g.dlw = grads[2], g.dlb = grads[3];
        g.dw_in = grads[4], g.db_in = grads[5], g.dw_mem = grads[6], g.db_mem = grads[7];
        g.dw_out = grads[8], g.db_out = grads[9];
        const int64_t N = d.N(), C = d.C;
        Tensor dres = r.norm == Norm::post ? Tensor::empty({N, C}) : Tensor();
        Tensor dz = p.wrap.mask ? Tensor::empty({N, C}) : Tensor();
        Tensor dy = empty_of<H>(N * C), dqi = Tensor::empty({N, d.Fi});
        Tensor dkv = memory.defined() ? Tensor::empty({d.M(), 2 * C}) : Tensor();
        Tensor du = Tensor::empty({N, C}), lnp = Tensor::empty({parts, 2 * C});
        Tensor scratch = Tensor::empty({parts, heads::kScratch}), dz_t, dqi_t, dkv_t;
        if (!f32) {
          dz_t = empty_of<T>(N * C), dqi_t = empty_of<T>(N * d.Fi);
          if (memory.defined()) dkv_t = empty_of<T>(d.M() * 2 * C);
        }
        g.dres = dres.defined() ? dres.data() : nullptr;
        g.dz = dz.defined() ? dz.data() : nullptr;
        g.dy = data_of<H>(dy), g.dqi = dqi.data(), g.du = du.data(), g.lnp = lnp.data();
        g.dkv = dkv.defined() ? dkv.data() : nullptr;
        g.dz_t = data_of<T>(dz_t), g.dqi_t = data_of<T>(dqi_t), g.dkv_t = data_of<T>(dkv_t);
        Plan<T, H> q = p;  // the masks live in this closure now
        q.wrap.mask = q.wrap.mask ? &resid_mask : nullptr;
        q.inputs.mask = q.inputs.mask ? &attn_mask : nullptr;
        q.scratch = scratch.data();
#pragma omp parallel num_threads(parts) if (parts > 1)
        backward_phases(g, dout, q, omp_get_thread_num(), parts);
      });
  return out;
}

}  // namespace

Tensor attention(const Tensor& x, const AttentionParams& a) {
  const Dims d = check(x, a);
  const Residual& res = a.residual;
  const bool grad = needs_grad({x, a.memory, res.ln_weight, res.ln_bias, a.w_in, a.b_in, a.w_mem,
                                a.b_mem, a.w_out, a.b_out});
  QKV_CHECK(!grad || !a.cache, "attention: a KV cache is for decoding, without grad");
  const bool drop = res.dropout > 0.0f && res.rng;
  DropoutMask attn_mask, resid_mask;  // attention's first, as the ops one by one would draw them
  if (drop) attn_mask = DropoutMask(DropoutMask::draw_seed(*res.rng), res.dropout);
  if (drop) resid_mask = DropoutMask(DropoutMask::draw_seed(*res.rng), res.dropout);
  if (a.precision == Precision::fp32)
    return run<float, float>(x, a, d, attn_mask, resid_mask, drop, grad);
  return attention_heads_in_bf16(d.C / d.NH, d.Tk, a.cache != nullptr)
             ? run<bf16, bf16>(x, a, d, attn_mask, resid_mask, drop, grad)
             : run<bf16, float>(x, a, d, attn_mask, resid_mask, drop, grad);
}

}  // namespace qkv
