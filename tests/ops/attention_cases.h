// The cases the attention tests share (test_attention.cpp, test_attention_qk.cpp): the options
// of one call, random inputs for them, the op's params, and the check against the oracle.
#pragma once

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "qkv/ops.h"
#include "qkv/runtime.h"
#include "sublayer_oracle.h"
#include "support/gradcheck.h"

namespace qkv::testing::attention_cases {

struct Case {
  Norm norm = Norm::pre;
  bool cross = false, causal = true, padded = false, bias = true;
  float p = 0.0f;  // dropout
  int64_t B = 3, Tq = 7, Tk = 7, C = 8, NH = 2;
  // The modern recipe's options (rope: self-attention only); rmsnorm drops the norm's bias.
  bool qk_norm = false, rope = false;
  NormType norm_type = NormType::layernorm;
};

inline std::string describe(const Case& k) {
  return fmt::format("{} {}{}{}{}{}{}{} p={} B={} Tq={} Tk={} C={} NH={}",
                     k.norm == Norm::pre ? "pre" : "post", k.cross ? "cross" : "self",
                     k.causal ? " causal" : "", k.padded ? " padded" : "", k.bias ? " bias" : "",
                     k.qk_norm ? " qk_norm" : "", k.rope ? " rope" : "",
                     k.norm_type == NormType::rmsnorm ? " rmsnorm" : "", k.p, k.B, k.Tq, k.Tk,
                     k.C, k.NH);
}

// The op's tensors: leaves that require grad (pad does not).
struct Inputs {
  Tensor x, memory, lw, lb, w_in, b_in, w_mem, b_mem, w_out, b_out, pad;
  std::vector<Tensor> leaves() const {
    std::vector<Tensor> all;
    for (const Tensor& t : {x, memory, lw, lb, w_in, b_in, w_mem, b_mem, w_out, b_out})
      if (t.defined()) all.push_back(t);
    return all;
  }
};

inline Tensor leaf(Shape shape, Rng& rng, float stddev = 1.0f) {
  return Tensor::randn(shape, rng, stddev, true);
}

inline Inputs make_inputs(const Case& k, Rng& rng) {
  const int64_t C = k.C;
  Inputs in;
  in.x = leaf({k.B, k.Tq, C}, rng);
  in.lw = leaf({C}, rng, 0.5f);
  if (k.bias && k.norm_type == NormType::layernorm) in.lb = leaf({C}, rng);
  in.w_in = leaf({k.cross ? C : 3 * C, C}, rng, 0.4f);
  if (k.bias) in.b_in = leaf({k.cross ? C : 3 * C}, rng, 0.3f);
  if (k.cross) {
    in.memory = leaf({k.B, k.Tk, C}, rng);
    in.w_mem = leaf({2 * C, C}, rng, 0.4f);
    if (k.bias) in.b_mem = leaf({2 * C}, rng, 0.3f);
  }
  in.w_out = leaf({C, C}, rng, 0.4f);
  if (k.bias) in.b_out = leaf({C}, rng, 0.3f);
  if (k.padded) {  // the second key of batch element 0 and the last keys of the last one
    std::vector<float> pad(size_t(k.B * k.Tk), 0.0f);
    pad[1] = pad[pad.size() - 1] = pad[pad.size() - 2] = 1;
    in.pad = Tensor::from_vector({k.B, k.Tk}, pad);
  }
  return in;
}

inline Inputs copy(const Inputs& a) {
  return {copy_of(a.x),
          copy_of(a.memory),
          copy_of(a.lw),
          copy_of(a.lb),
          copy_of(a.w_in),
          copy_of(a.b_in),
          copy_of(a.w_mem),
          copy_of(a.b_mem),
          copy_of(a.w_out),
          copy_of(a.b_out),
          a.pad};
}

inline AttentionParams params(const Inputs& in, const Case& k, Rng* rng) {
  return {.n_head = k.NH,
          .residual = {.norm = k.norm,
                       .norm_type = k.norm_type,
                       .ln_weight = in.lw,
                       .ln_bias = in.lb,
                       .dropout = k.p,
                       .rng = rng},
          .w_in = in.w_in,
          .b_in = in.b_in,
          .w_mem = in.w_mem,
          .b_mem = in.b_mem,
          .w_out = in.w_out,
          .b_out = in.b_out,
          .memory = in.memory,
          .causal = k.causal,
          .key_padding = in.pad,
          .qk_norm = k.qk_norm,
          .rotary = k.rope ? rotary_table(k.Tq, k.C / k.NH, 10000.0) : Rotary{}};
}

// The op and the oracle on copies of the same inputs: the output and every gradient.
inline void check_against_oracle(const Case& k) {
  CAPTURE(describe(k));
  Rng rng(51);
  const Inputs a = make_inputs(k, rng), b = copy(a);
  Rng ra(5), rb(5);
  Tensor ya = attention(a.x, params(a, k, &ra));
  Tensor yb = attention_oracle(b.x, params(b, k, &rb));
  check_close(ya, yb, "output");
  const Tensor seed = Tensor::randn(ya.shape(), rng);
  ya.backward(seed);
  yb.backward(seed);
  const std::vector<Tensor> la = a.leaves(), lb = b.leaves();
  for (size_t i = 0; i < la.size(); ++i)
    check_close(la[i].grad(), lb[i].grad(), fmt::format("gradient of input {}", i));
}

// check_against_oracle for every case at each thread count, then the default count again.
inline void check_on_threads(const std::vector<Case>& cases, std::initializer_list<int> threads) {
  for (int t : threads) {
    CAPTURE(t);
    set_num_threads(t);
    for (const Case& k : cases) check_against_oracle(k);
  }
  set_num_threads(0);
}

// The op's gradients against finite differences, with the same dropout masks at every
// evaluation.
inline void check_gradients(const Case& k) {
  CAPTURE(describe(k));
  Rng rng(8);
  const Inputs in = make_inputs(k, rng);
  testing::check_gradients(
      "attention",
      [&] {
        Rng drop(11);
        return attention(in.x, params(in, k, &drop));
      },
      in.leaves());
}

}  // namespace qkv::testing::attention_cases
