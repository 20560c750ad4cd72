// scaled_dot_product_attention: softmax(q·kᵀ/sqrt(HS) + mask)·v as one fused node.
// q: [B, Tq, C], k and v: [B, Tk, C]; head h owns channels [h·HS, (h+1)·HS) and is read in place
// (row stride C), so no permute copy is made. One OpenMP iteration per (b, h).
// packed_self_attention reads q, k and v in place from one projection's [B, T, 3C] output too
// (row stride 3C), so self-attention makes no split copies either. Also
// attention_probabilities, the same softmax without v or autograd, for looking inside models.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "ops/attention.h"
#include "ops/attention_kernels.h"
#include "ops/dropout_mask.h"
#include "ops/vecmath.h"
#include "qkv/error.h"
#include "qkv/ops.h"

namespace qkv {namespace attention_kernels {
namespace {


// Keys [0, n) pass the causal rule j <= i + Tk - Tq for query i (bottom-right aligned).
int64_t causal_keys(const Dims& d, int64_t i, bool causal) {
  return causal ? std::clamp<int64_t>(i + d.Tk - d.Tq + 1, 0, d.Tk) : d.Tk;
}

using vecmath::lane_dot;
using vecmath::lane_max;
using vecmath::lane_sum;

// In place over a row s: [Tk]: softmax over keys [0, n) whose pad is 0 (pad: [Tk] or null),
// exactly 0 elsewhere. A row with no visible key becomes all zeros.
void masked_softmax_row(float* s, int64_t n, int64_t Tk, const float* pad) {
  constexpr float kMasked = -std::numeric_limits<float>::infinity();
  if (pad)
    for (int64_t j = 0; j < n; ++j)
      if (pad[j] != 0.0f) s[j] = kMasked;
  const float mx = lane_max(s, n);
  if (mx == kMasked) {
    std::fill_n(s, Tk, 0.0f);
    return;
  }
  std::fill(s + n, s + Tk, 0.0f);
  for (int64_t j = 0; j < n; ++j) s[j] = s[j] == kMasked ? 0.0f : vecmath::exp(s[j] - mx);
  const float inv = 1.0f / lane_sum(s, n);
  for (int64_t j = 0; j < n; ++j) s[j] *= inv;
}

// Query rows per block of a head. With the causal mask, a block of rows [i0, i1) only needs
// the keys [0, causal_keys(i1 - 1)): the scores above that are masked and never computed, so
// at T = 256 the head's GEMMs and softmax do 5/8 of the full T² work (at T = 64, one block).
constexpr int64_t kRowBlock = 64;

// Keys that rows [i0, i1) may see: [0, n1).
int64_t block_keys(const Dims& d, int64_t i1, bool causal) { return causal_keys(d, i1 - 1, causal); }

}  // namespace

// One (b, h). Q: [Tq, HS] rows of stride ldq; O: [Tq, HS] rows of stride C; K, V: [Tk, HS]
// rows of stride ldk; pad: [Tk] or null. Writes P: [Tq, Tk] (softmax probabilities, 0 on
// masked keys; saved for backward) and, with dropout (mask set), A = P∘M in a: [Tq, Tk]
// (scratch), M the head's mask of 0 or 1/(1-p). O = A·V (A = P without dropout).
void head_forward(float* O, float* P, float* a, const float* Q, const float* K, const float* V,
                  const float* pad, const DropoutMask* mask, const Dims& d, bool causal) {
  const int64_t Tq = d.Tq, Tk = d.Tk, C = d.C, HS = d.HS;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  for (int64_t i0 = 0; i0 < Tq; i0 += kRowBlock) {
    const int64_t i1 = std::min(Tq, i0 + kRowBlock), rows = i1 - i0, n1 = block_keys(d, i1, causal);
    float* Pb = P + i0 * Tk;
    if (n1 > 0)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n1, HS, scale, Q + i0 * d.ldq,
                  d.ldq, K, d.ldk, 0.0f, Pb, Tk);
    for (int64_t i = i0; i < i1; ++i)
      masked_softmax_row(P + i * Tk, causal_keys(d, i, causal), Tk, pad);
    if (n1 == 0) {  // no row of the block sees a key: zeros, as the softmax rows are
      for (int64_t i = i0; i < i1; ++i) std::fill_n(O + i * C, HS, 0.0f);
      continue;
    }
    const float* A = Pb;
    if (mask) {
      const DropoutMask m = *mask;
      for (int64_t i = i0; i < i1; ++i)
        for (int64_t j = 0; j < n1; ++j)
          a[i * Tk + j] = P[i * Tk + j] * m(static_cast<uint64_t>(i * Tk + j));
      A = a + i0 * Tk;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, HS, n1, 1.0f, A, Tk, V, d.ldk,
                0.0f, O + i0 * C, C);
  }
}

// One (b, h), with A = P∘M (or P), O = A·V, S = scale·Q·Kᵀ and P = softmax(S):
//   dV += Aᵀ·dO;  dP = (dO·Vᵀ)∘M;  dS = P∘(dP - rowsum(dP∘P));  dQ += scale·dS·K;
//   dK += scale·dSᵀ·Q.
// dO: [Tq, HS] rows of stride C; Q, dQ: [Tq, HS] of stride ldq; K, V, dK, dV: [Tk, HS] of
// stride ldk. A null grad is skipped. beta = 0 writes the grads instead of adding to them.
// a, g: [Tq, Tk] scratch. Masked keys have P = 0, so they get dS = 0 with no mask test here.
// mask: the head's dropout mask M (recomputed), or null.
// Row blocks as in head_forward, the last first: it sees every key, so it writes dK and dV
// whole (with beta) and the other blocks add to them.
void head_backward(float* dQ, float* dK, float* dV, float* a, float* g, const float* dO,
                   const float* Q, const float* K, const float* V, const float* P,
                   const DropoutMask* mask, const Dims& d, float beta, bool causal) {
  const int64_t Tq = d.Tq, Tk = d.Tk, C = d.C, HS = d.HS, ldq = d.ldq, ldk = d.ldk;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  const int64_t blocks = (Tq + kRowBlock - 1) / kRowBlock;
  for (int64_t blk = blocks - 1; blk >= 0; --blk) {
    const int64_t i0 = blk * kRowBlock, i1 = std::min(Tq, i0 + kRowBlock), rows = i1 - i0;
    const int64_t n1 = block_keys(d, i1, causal);
    const float beta_kv = blk == blocks - 1 ? beta : 1.0f;
    if (n1 == 0) {  // these queries see no key: no gradient, but a fresh dQ is written
      if (dQ && beta == 0.0f)
        for (int64_t i = i0; i < i1; ++i) std::fill_n(dQ + i * ldq, HS, 0.0f);
      continue;
    }
    if (dV) {
      const float* A = P + i0 * Tk;
      if (mask) {
        const DropoutMask m = *mask;
        for (int64_t i = i0; i < i1; ++i)
          for (int64_t j = 0; j < n1; ++j)
            a[i * Tk + j] = P[i * Tk + j] * m(static_cast<uint64_t>(i * Tk + j));
        A = a + i0 * Tk;
      }
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n1, HS, rows, 1.0f, A, Tk,
                  dO + i0 * C, C, beta_kv, dV, ldk);
    }
    if (!dQ && !dK) continue;
    float* gb = g + i0 * Tk;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n1, HS, 1.0f, dO + i0 * C, C, V,
                ldk, 0.0f, gb, Tk);
    for (int64_t i = i0; i < i1; ++i) {
      float* gi = g + i * Tk;
      const float* pi = P + i * Tk;
      if (mask) {
        const DropoutMask m = *mask;
        for (int64_t j = 0; j < n1; ++j) gi[j] *= m(static_cast<uint64_t>(i * Tk + j));
      }
      const float dot = lane_dot(gi, pi, n1);
      for (int64_t j = 0; j < n1; ++j) gi[j] = pi[j] * (gi[j] - dot);
    }
    if (dQ)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, HS, n1, scale, gb, Tk, K, ldk,
                  beta, dQ + i0 * ldq, ldq);
    if (dK)
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n1, HS, rows, scale, gb, Tk,
                  Q + i0 * ldq, ldq, beta_kv, dK, ldk);
  }
}

}  // namespace attention_kernels

namespace {

using attention_kernels::Dims;
using attention_kernels::head_backward;
using attention_kernels::head_forward;

// out: [B, Tq, C]; q: [B, Tq, ·] rows of stride ldq; k, v: [B, Tk, ·] of stride ldk;
// P: [B, NH, Tq, Tk] (saved when save_p, else per-thread rows of scratch);
// masks: [B·NH] dropout masks, or null (no dropout); pad: [B, Tk] or null;
// scratch: [threads, 2, Tq, Tk].
// Heads use cblas_sgemm (OpenBLAS's OpenMP build runs single-threaded inside this region): it
// beat plain vectorised loops that skip the causal upper triangle by 3-4x, causal, 1 thread,
// AVX-512 Xeon, forward + backward: B=12 NH=4 T=64 HS=32: 0.48 + 0.54 ms vs 1.71 + 2.13 ms;
// B=64 NH=6 T=256 HS=64: 84 + 121 ms vs 298 + 462 ms.
// Each (b, h) is computed whole by one thread, so results do not depend on the thread count.
void attention_forward(float* out, float* P, float* scratch, const float* q, const float* k,
                       const float* v, const float* pad, const DropoutMask* masks, const Dims& d,
                       bool causal, bool save_p) {
  const int64_t TT = d.Tq * d.Tk;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < d.B; ++b) {
    for (int64_t h = 0; h < d.NH; ++h) {
      const int64_t bh = b * d.NH + h;
      float* tmp = scratch + 2 * TT * omp_get_thread_num();
      float* p = save_p ? P + bh * TT : tmp + TT;
      const int64_t oo = b * d.Tq * d.C + h * d.HS, qo = b * d.Tq * d.ldq + h * d.HS,
                    ko = b * d.Tk * d.ldk + h * d.HS;
      head_forward(out + oo, p, tmp, q + qo, k + ko, v + ko, pad ? pad + b * d.Tk : nullptr,
                   masks ? masks + bh : nullptr, d, causal);
    }
  }
}

// Gradients as in head_backward, for every (b, h); null grads are skipped. With overwrite the
// grads are written instead of added to (every element of each non-null one is written).
// scratch: [threads, 2, Tq, Tk]; other shapes as in attention_forward.
void attention_backward(float* dq, float* dk, float* dv, bool overwrite, float* scratch,
                        const float* dout, const float* q, const float* k, const float* v,
                        const float* P, const DropoutMask* masks, const Dims& d, bool causal) {
  const float beta = overwrite ? 0.0f : 1.0f;
  const int64_t TT = d.Tq * d.Tk;
  auto at = [&](float* base, int64_t off) { return base ? base + off : nullptr; };
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < d.B; ++b) {
    for (int64_t h = 0; h < d.NH; ++h) {
      const int64_t bh = b * d.NH + h;
      float* tmp = scratch + 2 * TT * omp_get_thread_num();
      const int64_t oo = b * d.Tq * d.C + h * d.HS, qo = b * d.Tq * d.ldq + h * d.HS,
                    ko = b * d.Tk * d.ldk + h * d.HS;
      head_backward(at(dq, qo), at(dk, ko), at(dv, ko), tmp, tmp + TT, dout + oo, q + qo,
                    k + ko, v + ko, P + bh * TT, masks ? masks + bh : nullptr, d, beta, causal);
    }
  }
}

// The op over q, k, v read in place (pointers into `inputs`, strides in d); grads() gives
// {dq, dk, dv} (each may be null) and whether they may be overwritten, when the backward runs.
// keys names the tensor holding k, for errors.
template <class Grads>
Tensor attend(const char* op, const std::vector<Tensor>& inputs, const float* q, const float* k,
              const float* v, const Dims& d, const AttentionOptions& options, const char* keys,
              const Tensor& key_tensor, Grads grads) {
  const Tensor& pad = options.key_padding;
  QKV_CHECK(!pad.defined() || pad.shape() == Shape({d.B, d.Tk}),
            "{}: key_padding is {}, expected [B, Tk] = [{}, {}] for {} {}", op,
            pad.defined() ? pad.shape() : Shape{}, d.B, d.Tk, keys, key_tensor.shape());
  QKV_CHECK(options.dropout >= 0.0f && options.dropout < 1.0f,
            "{}: dropout must be in [0, 1), got {}", op, options.dropout);
  const bool drop = options.dropout > 0.0f && options.rng != nullptr;
  const bool grad = needs_grad(inputs);
  // One mask seed per (b, h), drawn in that order before the parallel loop: the masks are the
  // same for any thread count, a saved rng state replays them, and the backward recomputes
  // them (ops/dropout_mask.h) instead of keeping [B, NH, Tq, Tk] of them.
  std::vector<DropoutMask> masks;
  if (drop)
    for (int64_t bh = 0; bh < d.B * d.NH; ++bh)
      masks.emplace_back(DropoutMask::draw_seed(*options.rng), options.dropout);
  Tensor out = Tensor::empty({d.B, d.Tq, d.C});
  Tensor P = grad ? Tensor::empty({d.B, d.NH, d.Tq, d.Tk}) : Tensor();
  Tensor scratch = Tensor::empty({omp_get_max_threads(), 2, d.Tq, d.Tk});
  attention_forward(out.data(), grad ? P.data() : nullptr, scratch.data(), q, k, v,
                    pad.defined() ? pad.data() : nullptr, drop ? masks.data() : nullptr, d,
                    options.causal, grad);
  if (!grad) return out;
  const bool causal = options.causal;
  record(out, op, inputs, [inputs, q, k, v, P, masks, d, causal, grads](const float* dout) {
    Tensor tmp = Tensor::empty({omp_get_max_threads(), 2, d.Tq, d.Tk});
    bool overwrite = false;
    const auto [dq, dk, dv] = grads(overwrite);
    attention_backward(dq, dk, dv, overwrite, tmp.data(), dout, q, k, v, P.data(),
                       masks.empty() ? nullptr : masks.data(), d, causal);
  });
  return out;
}

// Validates q, k (and v, unless null) for the op named `op`; returns the dimensions with the
// contiguous layout (row strides C).
Dims check_attention(const char* op, const Tensor& q, const Tensor& k, const Tensor* v,
                     int64_t n_head) {
  QKV_CHECK(q.defined() && k.defined() && (!v || v->defined()), "{}: q, k{} must all be defined",
            op, v ? " and v" : "");
  QKV_CHECK(q.rank() == 3 && k.rank() == 3 && (!v || v->shape() == k.shape()) &&
                q.size(0) == k.size(0) && q.size(2) == k.size(2),
            "{}: q is {}, k is {}{}; expected q [B, Tq, C] and k{} [B, Tk, C]", op, q.shape(),
            k.shape(), v ? fmt::format(", v is {}", v->shape()) : "", v ? ", v" : "");
  const int64_t B = q.size(0), Tq = q.size(1), Tk = k.size(1), C = q.size(2);
  QKV_CHECK(B > 0 && Tq > 0 && Tk > 0 && C > 0, "{}: empty input: q is {}, k is {}", op,
            q.shape(), k.shape());
  QKV_CHECK(n_head > 0 && C % n_head == 0,
            "{}: C = {} channels (q is {}) are not divisible by n_head = {}", op, C, q.shape(),
            n_head);
  return Dims{B, Tq, Tk, C, n_head, C / n_head, C, C};
}

// One (b, h) of attention_probabilities: P: [Tq, Tk] = masked softmax(scale·Q·Kᵀ), the whole
// score matrix at once (no gradient, no blocks to skip for). Shapes as in head_forward.
void head_probabilities(float* P, const float* Q, const float* K, const float* pad,
                        const Dims& d, bool causal) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(d.HS));
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d.Tq, d.Tk, d.HS, scale, Q, d.ldq, K,
              d.ldk, 0.0f, P, d.Tk);
  for (int64_t i = 0; i < d.Tq; ++i)
    attention_kernels::masked_softmax_row(P + i * d.Tk, attention_kernels::causal_keys(d, i, causal),
                                          d.Tk, pad);
}

}  // namespace

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    int64_t n_head, const AttentionOptions& options) {
  const char* op = "scaled_dot_product_attention";
  const Dims d = check_attention(op, q, k, &v, n_head);
  // q, k and v may be one tensor, so their grads are added to (filled with zeros first).
  return attend(op, {q, k, v}, q.data(), k.data(), v.data(), d, options, "k", k,
                [q, k, v](bool& overwrite) {
                  overwrite = false;
                  return std::array<float*, 3>{q.grad_data(), k.grad_data(), v.grad_data()};
                });
}

Tensor packed_self_attention(const Tensor& qkv, int64_t n_head, const AttentionOptions& options) {
  const char* op = "packed_self_attention";
  QKV_CHECK(qkv.defined() && qkv.rank() == 3 && qkv.size(2) % 3 == 0 && qkv.numel() > 0,
            "{}: qkv is {}; expected [B, T, 3C] with q, k, v side by side", op,
            qkv.defined() ? qkv.shape() : Shape{});
  const int64_t B = qkv.size(0), T = qkv.size(1), C = qkv.size(2) / 3;
  QKV_CHECK(n_head > 0 && C % n_head == 0,
            "{}: C = {} channels (qkv is {}) are not divisible by n_head = {}", op, C, qkv.shape(),
            n_head);
  const Dims d{B, T, T, C, n_head, C / n_head, 3 * C, 3 * C};
  const float* x = qkv.data();
  // The heads' q, k and v slices tile the whole [B, T, 3C] grad, so a fresh one is written.
  return attend(op, {qkv}, x, x + C, x + 2 * C, d, options, "qkv", qkv,
                [qkv, C](bool& overwrite) {
                  float* g = qkv.grad_to_write(overwrite);
                  return g ? std::array<float*, 3>{g, g + C, g + 2 * C} : std::array<float*, 3>{};
                });
}

Tensor attention_probabilities(const Tensor& q, const Tensor& k, int64_t n_head,
                               const AttentionOptions& options) {
  const char* op = "attention_probabilities";
  const Dims d = check_attention(op, q, k, nullptr, n_head);
  const Tensor& pad = options.key_padding;
  QKV_CHECK(!pad.defined() || pad.shape() == Shape({d.B, d.Tk}),
            "{}: key_padding is {}, expected [B, Tk] = [{}, {}] for k {}", op,
            pad.defined() ? pad.shape() : Shape{}, d.B, d.Tk, k.shape());
  Tensor P = Tensor::empty({d.B, d.NH, d.Tq, d.Tk});
  float* p = P.data();
  const float *qd = q.data(), *kd = k.data(), *padd = pad.defined() ? pad.data() : nullptr;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t h = 0; h < d.NH; ++h)
      head_probabilities(p + (b * d.NH + h) * d.Tq * d.Tk, qd + b * d.Tq * d.C + h * d.HS,
                         kd + b * d.Tk * d.C + h * d.HS, padd ? padd + b * d.Tk : nullptr, d,
                         options.causal);
  return P;
}

}  // namespace qkv
