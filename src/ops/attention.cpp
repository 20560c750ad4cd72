// attention: the multi-head attention sublayer (qkv/ops.h) as one node: checks, the buffers
// a call computes into, the Plan that points the phases (ops/attention_phases.h) at them, and
// the backward recorded on the output.
#include <omp.h>

#include <algorithm>
#include <cstdint>

#include "ops/attention_phases.h"
#include "ops/pointwise.h"
#include "qkv/autograd.h"

namespace qkv {
namespace {

using namespace attention_phases;

// Checks the params against x: [B, Tq, C]; returns the dims.
Dims check(const Tensor& x, const AttentionParams& a) {
  const char* op = "attention";
  QKV_CHECK(x.defined() && x.rank() == 3 && x.numel() > 0, "{}: {}; expected [B, T, C]", op,
            describe("x", x));
  const int64_t B = x.size(0), Tq = x.size(1), C = x.size(2);
  QKV_CHECK(a.n_head > 0 && C % a.n_head == 0,
            "{}: C = {} channels of {} do not split into n_head = {} heads", op, C,
            describe("x", x), a.n_head);
  sublayer::check_residual(op, a.residual, C);
  const bool cross = a.memory.defined();
  QKV_CHECK(!cross || (a.memory.rank() == 3 && a.memory.size(0) == B && a.memory.size(2) == C &&
                       a.memory.size(1) > 0),
            "{}: {} must be [B, Tk, C] = [{}, Tk, {}] for {}", op,
            describe("memory", a.memory), B, C, describe("x", x));
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
  if (a.rotary.defined()) {
    const int64_t HS = C / a.n_head, positions = a.rotary.cos.defined() ? a.rotary.cos.size(0) : 0;
    QKV_CHECK(!cross, "{}: rotary is for self-attention; cross-attention's keys are the memory", op);
    QKV_CHECK(HS % 2 == 0, "{}: rotary needs an even head size, got {}", op, HS);
    sublayer::check_shape(op, "rotary.cos", a.rotary.cos, {positions, HS / 2});
    sublayer::check_shape(op, "rotary.sin", a.rotary.sin, {positions, HS / 2});
    const int64_t first = a.cache ? a.cache->length : 0;
    QKV_CHECK(first + Tq <= positions,
              "{}: positions {}..{} are past the rotary table's {}", op, first, first + Tq - 1,
              positions);
  }
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

// The tensors one call computes into, which the backward keeps (Plan says what each holds);
// undefined where the call needs none.
struct Buffers {
  Tensor u, s, mean, rstd;  // the residual wrap's (sublayer::Wrap)
  Tensor qi, kv, memory_t, y, y_t, lse;
  Tensor q_rstd, k_rstd;  // qk_norm's
};

template <class T, class H>
Buffers allocate(const AttentionParams& a, const Dims& d, bool project_memory) {
  constexpr bool f32 = sublayer::is_float<T>;
  const int64_t N = d.N(), C = d.C;
  const bool pre = a.residual.norm == Norm::pre;
  Buffers b;
  if (pre || !f32) b.u = empty_of<T>(N * C);
  if (!pre) b.s = Tensor::empty({N, C});
  b.mean = Tensor::empty({N}), b.rstd = Tensor::empty({N});
  b.qi = empty_of<H>(N * d.Fi);
  if (project_memory) {
    b.kv = sublayer::is_float<H> ? Tensor::empty({d.B, d.Tk, 2 * C}) : empty_of<H>(d.M() * 2 * C);
    if (!f32) b.memory_t = empty_of<T>(d.M() * C);
  }
  b.y = Tensor::empty({N, C});
  if (!f32) b.y_t = empty_of<T>(N * C);
  b.lse = Tensor::empty({d.B, d.NH, d.Tq});
  if (a.qk_norm) {
    b.q_rstd = Tensor::empty({N, d.NH});
    if (!a.memory.defined()) b.k_rstd = Tensor::empty({N, d.NH});
    if (project_memory) b.k_rstd = Tensor::empty({d.M(), d.NH});
  }
  return b;
}

// Points the phases at x, the params, the buffers and the cache. Masks: null without dropout.
template <class T, class H>
Plan<T, H> make_plan(const Tensor& x, const AttentionParams& a, const Dims& d, Buffers& b,
                     bool project_memory, const DropoutMask* attn_mask,
                     const DropoutMask* resid_mask) {
  constexpr bool f32 = sublayer::is_float<T>;
  const int64_t C = d.C;
  const bool cross = a.memory.defined();
  const Residual& res = a.residual;
  KVCache* cache = a.cache;
  Plan<T, H> p{};
  p.d = d;
  p.wrap = {res.norm,
            res.norm_type,
            C,
            res.ln_weight.data(),
            sublayer::data_or_null(res.ln_bias),
            res.eps,
            resid_mask,
            data_of<T>(b.u),
            data_of<float>(b.s),
            b.mean.data(),
            b.rstd.data()};
  p.x = x.data();
  p.in = p.wrap.u ? p.wrap.u : reinterpret_cast<const T*>(x.data());  // f32 post-norm: x itself
  p.memory = project_memory ? a.memory.data() : nullptr;
  p.memory_t = f32 ? (p.memory ? const_cast<T*>(reinterpret_cast<const T*>(p.memory)) : nullptr)
                   : data_of<T>(b.memory_t);
  p.w_in = sublayer::weight<T>(a.w_in), p.w_out = sublayer::weight<T>(a.w_out);
  p.w_mem = project_memory ? sublayer::weight<T>(a.w_mem) : nullptr;
  p.b_in = sublayer::data_or_null(a.b_in), p.b_out = sublayer::data_or_null(a.b_out);
  p.b_mem = sublayer::data_or_null(a.b_mem);
  p.qi = data_of<H>(b.qi);
  p.kv = project_memory ? data_of<H>(b.kv) : nullptr;
  p.cache = !cross && cache ? cache->kv.data() + cache->length * 2 * C : nullptr;
  p.cached = cache ? cache->length : 0;
  p.capacity = cache ? cache->kv.size(1) : 0;
  p.y = b.y.data(), p.lse = b.lse.data();
  p.y_t = f32 ? reinterpret_cast<T*>(b.y.data()) : data_of<T>(b.y_t);
  p.probabilities = a.probabilities ? a.probabilities->data() : nullptr;
  p.qk = {a.qk_norm, sublayer::data_or_null(a.rotary.cos), sublayer::data_or_null(a.rotary.sin)};
  p.q_rstd = data_of<float>(b.q_rstd), p.k_rstd = data_of<float>(b.k_rstd);
  // q, k and v in place: from qi (self), or q from qi and k, v from the memory's projection or
  // the cache (ld 2C, one batch element every capacity rows of a cache).
  const H* keys = cross ? data_of<H>(b.kv) : data_of<H>(b.qi) + C;
  if constexpr (sublayer::is_float<H>)
    if (cache) keys = cache->kv.data();
  const int64_t ldk = cross || cache ? 2 * C : 3 * C;
  const int64_t sk = cache ? p.capacity * ldk : d.Tk * ldk;
  p.layout = {d.B, d.Tq, d.Tk, d.NH, C / d.NH, d.Fi, d.Tq * d.Fi, ldk, sk, a.causal};
  p.inputs = {data_of<H>(b.qi), keys, keys + C, sublayer::data_or_null(a.key_padding), attn_mask};
  return p;
}

// The node's backward: scratch for the gradients, then the phases in reverse. grads: in
// record()'s argument order.
template <class T, class H>
void backward(const float* dout, GradOuts grads, Plan<T, H> p, bool cross, int parts) {
  constexpr bool f32 = sublayer::is_float<T>;
  const Dims& d = p.d;
  Grads<T, H> g{};
  g.dx = grads[0], g.dmem = grads[1], g.dlw = grads[2], g.dlb = grads[3];
  g.dw_in = grads[4], g.db_in = grads[5], g.dw_mem = grads[6], g.db_mem = grads[7];
  g.dw_out = grads[8], g.db_out = grads[9];
  const int64_t N = d.N(), C = d.C;
  Tensor dres = p.wrap.norm == Norm::post ? Tensor::empty({N, C}) : Tensor();
  Tensor dz = p.wrap.mask ? Tensor::empty({N, C}) : Tensor();
  Tensor dy = empty_of<H>(N * C), dqi = Tensor::empty({N, d.Fi});
  Tensor dkv = cross ? Tensor::empty({d.M(), 2 * C}) : Tensor();
  Tensor du = Tensor::empty({N, C}), lnp = Tensor::empty({parts, 2 * C});
  Tensor scratch = Tensor::empty({parts, heads::kScratch}), dz_t, dqi_t, dkv_t;
  if (!f32) {
    dz_t = empty_of<T>(N * C), dqi_t = empty_of<T>(N * d.Fi);
    if (cross) dkv_t = empty_of<T>(d.M() * 2 * C);
  }
  g.dres = data_of<float>(dres), g.dz = data_of<float>(dz);
  g.dy = data_of<H>(dy), g.dqi = dqi.data(), g.du = du.data(), g.lnp = lnp.data();
  g.dkv = data_of<float>(dkv);
  g.dz_t = data_of<T>(dz_t), g.dqi_t = data_of<T>(dqi_t), g.dkv_t = data_of<T>(dkv_t);
  p.scratch = scratch.data();
#pragma omp parallel num_threads(parts) if (parts > 1)
  backward_phases(g, dout, p, omp_get_thread_num(), parts);
}

// The node: the forward, and the backward recorded on its output, with the projections'
// operands of type T.
template <class T, class H>
Tensor run(const Tensor& x, const AttentionParams& a, const Dims& d, DropoutMask attn_mask,
           DropoutMask resid_mask, bool drop, bool grad) {
  const bool cross = a.memory.defined();
  KVCache* cache = a.cache;
  const bool project_memory = cross && !(cache && cache->kv.defined());
  Buffers b = allocate<T, H>(a, d, project_memory);
  if (cross && cache && project_memory) *cache = {b.kv, d.Tk};
  if (!cross && cache) reserve(*cache, d.B, d.C, d.Tq);
  if (a.probabilities) *a.probabilities = Tensor::empty({d.B, d.NH, d.Tq, d.Tk});
  Plan<T, H> p = make_plan<T, H>(x, a, d, b, project_memory, drop ? &attn_mask : nullptr,
                                 drop ? &resid_mask : nullptr);
  const int parts = d.N() * d.C * d.Fi >= kSplitMin ? omp_get_max_threads() : 1;
  Tensor out = Tensor::empty(x.shape()), scratch = Tensor::empty({parts, heads::kScratch});
  p.scratch = scratch.data();
  on_parts(parts, [&](int t, int n_parts) { forward_phases(out.data(), p, t, n_parts); });
  if (cache && !cross) cache->length += d.Tq;
  if (!grad) return out;

  const Residual& res = a.residual;
  record(
      out, "attention",
      {x, a.memory, res.ln_weight, res.ln_bias, a.w_in, a.b_in, a.w_mem, a.b_mem, a.w_out, a.b_out},
      // a, b and x keep alive what the plan points at; the masks move into the closure.
      [x, a, b, p, attn_mask, resid_mask, drop, cross, parts](const float* dout, GradOuts grads) {
        Plan<T, H> q = p;
        q.probabilities = nullptr;
        q.wrap.mask = drop ? &resid_mask : nullptr;
        q.inputs.mask = drop ? &attn_mask : nullptr;
        backward(dout, grads, q, cross, parts);
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
