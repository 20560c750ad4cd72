// Internal: what the attention sublayer (ops/attention_phases.h) does to q and k between their
// projection and the heads, forward and backward: the parameter-free RMS norm of each head
// (qk_norm), then the rotary position embedding (qkv::Rotary). Both act on one head's HS
// channels at one position at a time, in place in the projection's rows, so the heads, the KV
// cache and the recorded probabilities see q and k as transformed.
#pragma once

#include <cstdint>

#include "ops/bf16.h"

namespace qkv::attention_qk {

constexpr float kEps = 1e-5f;  // of the RMS norm, as bench/ref_model.py's rms()

// What one call does: norm (qk_norm); a rotation when cos and sin ([positions, HS/2]) are set.
struct Transform {
  bool norm = false;
  const float *cos = nullptr, *sin = nullptr;
  bool any() const { return norm || cos; }
  Transform without_rotation() const { return {norm, nullptr, nullptr}; }
};

// Where a projection's heads are: row r of the projection at x + r·ld, head h at channel h·HS;
// row r is at position pos0 + r % T (T rows per sequence).
struct Rows {
  int64_t ld, NH, HS, T, pos0;
};

// Rows [r0, r1), every head: x = rotate(norm(x)) in place, and rstd: [rows, NH], 1/rms of each
// head's row (when norm; null otherwise).
template <class H>
void forward(H* x, float* rstd, const Rows& l, const Transform& t, int64_t r0, int64_t r1);

// Head h of rows [r0, r1): d, the gradient of the transformed rows (fp32, the layout of x),
// becomes the gradient of the projection's rows, in place, from y (the forward's output) and
// rstd.
template <class H>
void backward_head(float* d, const H* y, const float* rstd, const Rows& l, const Transform& t,
                   int64_t h, int64_t r0, int64_t r1);

}  // namespace qkv::attention_qk
