// Every differentiable function, as free functions in the style of PyTorch's functional API.
// Each records its backward when grad mode is on and an input requires grad (see autograd.h).
//
// Dimension legend: B batch, T time, C channels, NH heads, HS head size (C / NH), V vocab,
// N = B*T rows, I/O in/out features. Shapes have rank <= 4. Shape errors throw qkv::Error
// naming the op and both shapes.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <vector>

#include "qkv/autograd.h"
#include "qkv/rng.h"
#include "qkv/tensor.h"

namespace qkv {

// ---- elementwise (src/ops/elementwise.cpp) ----
// Binary ops broadcast as NumPy does (shapes aligned at the trailing dim, extents equal or 1):
// same shape, a one-element operand, and [B,T,C] (op) [C] are the common cases.
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor neg(const Tensor& x);
Tensor add_scalar(const Tensor& x, float s);
Tensor mul_scalar(const Tensor& x, float s);
Tensor pow(const Tensor& x, float exponent);  // x^p; for non-integer p, x must be positive
// out = x where mask == 0, value where mask != 0; mask broadcasts to x and gets no grad.
Tensor masked_fill(const Tensor& x, const Tensor& mask, float value);

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& x) { return neg(x); }

// ---- activations (src/ops/activation.cpp) ----
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
enum class GeluApprox { none, tanh };  // none: x·Φ(x) with erf (PyTorch's default)
Tensor gelu(const Tensor& x, GeluApprox approx = GeluApprox::none);

// ---- reductions (src/ops/reduce.cpp) ----
Tensor sum(const Tensor& x);                               // one element, shape []
Tensor sum(const Tensor& x, int dim, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, int dim, bool keepdim = false);
Tensor max_last(const Tensor& x);     // max over the last dim; no grad (records nothing)
Tensor argmax_last(const Tensor& x);  // index of the max over the last dim, as floats; no grad

// ---- shape and layout (src/ops/reshape.cpp) ----
Tensor reshape(const Tensor& x, Shape shape);  // shares storage; numel must match
Tensor view(const Tensor& x, Shape shape);     // same as reshape (all tensors are contiguous)
// The same with a braced list, which may hold one -1 (inferred from numel): reshape(x, {B, -1}).
// Needed because Shape rejects negative extents; a braced list picks these overloads.
Tensor reshape(const Tensor& x, std::initializer_list<int64_t> dims);
Tensor view(const Tensor& x, std::initializer_list<int64_t> dims);
Tensor transpose(const Tensor& x, int dim0, int dim1);  // copies
Tensor permute(const Tensor& x, std::span<const int> dims);  // copies
Tensor narrow(const Tensor& x, int dim, int64_t start, int64_t length);  // copies
Tensor concat(const std::vector<Tensor>& xs, int dim);
std::vector<Tensor> split(const Tensor& x, std::span<const int64_t> sizes, int dim);

// ---- matrix products (src/ops/matmul.cpp), on cblas_sgemm ----
// a: [..., M, K] (or [..., K, M] with trans_a), b: [..., K, N] (or [..., N, K] with trans_b).
// Rank 2, 3 or 4; leading (batch) dims must match, or b may be rank 2 and shared by all.
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);
// y = x·Wᵀ + b. x: [..., I], weight: [O, I] (PyTorch's layout), bias: [O] or undefined.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// ---- lookup (src/ops/embedding.cpp) ----
// Rows of weight [V, C] picked by ids (each in [0, V)); result has shape ids_shape + [C].
Tensor embedding(const Tensor& weight, std::span<const int32_t> ids, Shape ids_shape);

// ---- softmax family (src/ops/softmax.cpp), over the last dim ----
Tensor softmax(const Tensor& x);
Tensor log_softmax(const Tensor& x);

// ---- normalisation (src/ops/norm.cpp) ----
// Over the last dim; weight: [C]; bias: [C] or undefined (nanoGPT's bias=False).
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
                  float eps = 1e-5f);

// ---- dropout (src/ops/dropout.cpp) ----
// Zeroes each element with probability p and scales the rest by 1/(1-p); identity when
// training is false or p == 0. Draws from rng, so a saved rng state replays the same mask.
Tensor dropout(const Tensor& x, float p, bool training, Rng& rng);

// ---- loss (src/ops/loss.cpp) ----
// Mean over the targets that are not ignore_index of -log softmax(logits)[target].
// logits: [N, V] (or [B, T, V], flattened); targets: N ids in [0, V) or ignore_index.
// Throws when every target is ignored.
Tensor softmax_cross_entropy(const Tensor& logits, std::span<const int32_t> targets,
                             int32_t ignore_index = -1);

// ---- attention (src/ops/attention.cpp) ----
struct AttentionOptions {
  // Query i may see key j only if j <= i + (Tk - Tq): bottom-right aligned, so decoding the
  // last Tq positions against a cache of Tk keys masks exactly as the full sequence would.
  bool causal = false;
  // [B, Tk]; nonzero marks a padding key that no query may see (PyTorch's key_padding_mask).
  Tensor key_padding;
  // Dropout on the attention probabilities (nanoGPT's attn_dropout), drawn from *rng; only
  // when dropout > 0 and rng is set (the module passes null in eval mode).
  float dropout = 0.0f;
  Rng* rng = nullptr;
};
// softmax(q·kᵀ / sqrt(HS) + mask)·v for NH heads. q: [B, Tq, C], k and v: [B, Tk, C], where
// head h owns channels [h·HS, (h+1)·HS) as in PyTorch's view(B, T, NH, HS). Returns [B, Tq, C].
// Self-attention has Tq == Tk; cross-attention and cached decoding have Tq != Tk. A query row
// that can see no key gives zeros.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    int64_t n_head, const AttentionOptions& options = {});
// The probabilities scaled_dot_product_attention computes for the same q, k, n_head and masks
// (same kernel): [B, NH, Tq, Tk], rows summing to 1, 0 on masked keys (a row that sees no key is
// all 0). For looking inside a model: forward only, never recorded; options.dropout is ignored.
Tensor attention_probabilities(const Tensor& q, const Tensor& k, int64_t n_head,
                               const AttentionOptions& options = {});

}  // namespace qkv
