// Internal: one attention head's forward and backward (src/ops/attention.cpp), shared by the
// attention ops and the fused self-attention sublayer (src/ops/residual_attention.cpp).
#pragma once

#include <cstdint>

#include "ops/dropout_mask.h"

namespace qkv::attention_kernels {

// B batch, Tq queries, Tk keys, C channels, NH heads of HS channels. ldq: row stride of q (and
// dq); ldk: of k, v (and dk, dv). The output (and its grad) has row stride C.
struct Dims {
  int64_t B, Tq, Tk, C, NH, HS, ldq, ldk;
};

// One (b, h). Q: [Tq, HS] rows of stride ldq; O: [Tq, HS] rows of stride C; K, V: [Tk, HS]
// rows of stride ldk; pad: [Tk] or null. Writes P: [Tq, Tk] (softmax probabilities, 0 on
// masked keys; saved for backward) and O = A·V with A = P∘M, M the head's dropout mask (when
// mask is set; A is built in a: [Tq, Tk] scratch), else A = P. Single-threaded.
void head_forward(float* O, float* P, float* a, const float* Q, const float* K, const float* V,
                  const float* pad, const DropoutMask* mask, const Dims& d, bool causal);

// The gradients of one (b, h) given dO: [Tq, HS] rows of stride C; shapes as in head_forward.
// A null grad is skipped; beta = 0 writes the grads, 1 adds to them. a, g: [Tq, Tk] scratch.
void head_backward(float* dQ, float* dK, float* dV, float* a, float* g, const float* dO,
                   const float* Q, const float* K, const float* V, const float* P,
                   const DropoutMask* mask, const Dims& d, float beta, bool causal);

}  // namespace qkv::attention_kernels
