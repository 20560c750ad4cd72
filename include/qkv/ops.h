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
#include "qkv/enum_names.h"
#include "qkv/precision.h"
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
Tensor sum(const Tensor& x);  // one element, shape []
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
Tensor transpose(const Tensor& x, int dim0, int dim1);                   // copies
Tensor permute(const Tensor& x, std::span<const int> dims);              // copies
Tensor narrow(const Tensor& x, int dim, int64_t start, int64_t length);  // copies
Tensor concat(const std::vector<Tensor>& xs, int dim);
std::vector<Tensor> split(const Tensor& x, std::span<const int64_t> sizes, int dim);

// ---- matrix products (src/ops/matmul.cpp), on cblas_sgemm (or oneDNN in bf16) ----
// a: [..., M, K] (or [..., K, M] with trans_a), b: [..., K, N] (or [..., N, K] with trans_b).
// Rank 2, 3 or 4; leading (batch) dims must match, or b may be rank 2 and shared by all.
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);
// y = x·Wᵀ + b. x: [..., I], weight: [O, I] (PyTorch's layout), bias: [O] or undefined.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
              Precision precision = Precision::fp32);

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
// RMSNorm (Zhang & Sennrich, 2019): x / sqrt(mean(x²) + eps)·weight, over the last dim, no bias.
Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps = 1e-5f);
// Which of the two a model normalises with (model.norm_type).
enum class NormType { layernorm, rmsnorm };
constexpr EnumNames<2> enum_names(NormType) { return {"layernorm", "rmsnorm"}; }

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

// ---- transformer sublayers (src/ops/attention.cpp, src/ops/mlp.cpp) ----
// A sublayer wraps its core f (attention, or the MLP) in a norm, dropout and a residual:
//   Norm::pre (GPT-2):                  out = x + dropout(f(norm(x)))
//   Norm::post (Vaswani et al., 2017):  out = norm(x + dropout(f(x)))
// where norm is layer_norm, or rms_norm (NormType::rmsnorm, which takes no bias).
// Each is one node with one forward and one backward for all of its options. Threads split the
// rows, heads and blocks of query rows inside it; for a fixed thread count the results repeat
// exactly, and they do not depend on how the batch is split between the threads.
enum class Norm { pre, post };
// Its names in config files and messages (model.norm = "post"; see qkv/enum_names.h).
constexpr EnumNames<2> enum_names(Norm) { return {"pre", "post"}; }

struct Residual {
  Norm norm = Norm::pre;
  NormType norm_type = NormType::layernorm;
  Tensor ln_weight, ln_bias;  // [C]; the bias may be undefined (and must be, for rmsnorm)
  float eps = 1e-5f;
  // Dropout on f's output, and in attention on the probabilities as well (nanoGPT's
  // resid_dropout and attn_dropout): masks drawn from *rng, attention's first; none when
  // dropout is 0 or rng is null (the modules pass null outside training).
  float dropout = 0.0f;
  Rng* rng = nullptr;
};

// The keys and values one attention keeps between decoding steps. Self-attention appends the
// new positions' at every call; cross-attention projects the memory on the first call and then
// reuses it. A copy shares the tensor until one of the two appends (copy on write), so beam
// search can hand each hypothesis its parent's cache cheaply.
struct KVCache {
  Tensor kv;  // [B, capacity, 2C]: keys, then values, of positions [0, length)
  int64_t length = 0;
};

// Rotary position embedding (Su et al., 2021): at position p, the channels (i, i + HS/2) of each
// head of q and k are turned by the angle p·base^(-2i/HS), i < HS/2 (bench/ref_model.py's
// convention). cos, sin: [positions, HS/2], computed in double and stored as float.
struct Rotary {
  Tensor cos, sin;
  bool defined() const { return cos.defined(); }
};
Rotary rotary_table(int64_t positions, int64_t head_size, double base);

struct AttentionParams {
  int64_t n_head = 1;
  Precision precision = Precision::fp32;
  Residual residual;
  // x·w_inᵀ + b_in gives q, k and v (self-attention: [3C, C]) or q alone (cross-attention:
  // [C, C]); memory·w_memᵀ + b_mem gives k and v ([2C, C], cross-attention only); w_out [C, C]
  // projects the heads' output. Any bias may be undefined.
  Tensor w_in, b_in, w_mem, b_mem, w_out, b_out;
  Tensor memory;             // cross-attention: [B, Tk, C]; undefined for self-attention
  bool causal = false;       // query i sees key j only if j <= i + Tk - Tq (aligned at the end)
  Tensor key_padding;        // [B, Tk], nonzero marks a key no query sees; or undefined
  KVCache* cache = nullptr;  // decoding (never with grad); see KVCache
  Tensor* probabilities = nullptr;  // receives softmax(q·kᵀ/√HS) [B, NH, Tq, Tk], no dropout
  // q and k of each head as the heads see them: RMS-normalised without parameters (eps 1e-5),
  // when qk_norm, then rotated (self-attention only) when rotary is defined. A query or key at
  // row i of x is at position i + the cached positions; a cache keeps its keys rotated.
  bool qk_norm = false;
  Rotary rotary;
};
// Multi-head attention as a sublayer: x [B, Tq, C] -> [B, Tq, C]. Head h owns channels
// [h·HS, (h+1)·HS) of q, k and v (PyTorch's view(B, T, NH, HS)); a query that sees no key gets
// zeros. The forward keeps each row's softmax statistics, not its probabilities, and the
// backward recomputes them block by block: memory grows linearly with T.
Tensor attention(const Tensor& x, const AttentionParams& params);

// The MLP's nonlinearity (model.activation): gelu(h) with the exact erf; relu2: relu(h)²;
// swiglu (Shazeer, 2020): silu(h)·(x·w_gateᵀ + b_gate), silu(h) = h·sigmoid(h).
enum class Activation { gelu, relu2, swiglu };
constexpr EnumNames<3> enum_names(Activation) { return {"gelu", "relu2", "swiglu"}; }

struct MlpParams {
  Precision precision = Precision::fp32;
  Residual residual;
  Activation activation = Activation::gelu;
  Tensor w_fc, b_fc;      // [F, C], [F] or undefined
  Tensor w_proj, b_proj;  // [C, F], [C] or undefined
  Tensor w_gate, b_gate;  // swiglu only: [F, C], [F] or undefined
};
// The MLP as a sublayer: f(x) = act(h)·w_projᵀ + b_proj with h = x·w_fcᵀ + b_fc and act as
// `activation` says; x [..., C] -> [..., C].
Tensor mlp(const Tensor& x, const MlpParams& params);

}  // namespace qkv
