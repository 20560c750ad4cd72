// attention's q/k options and RMSNorm wrapping (qk_norm, rope, norm_type = rmsnorm): the op
// against its composed oracle on several thread counts, its gradients against finite
// differences, the KV cache with rotated keys, recorded probabilities, and errors.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "attention_cases.h"
#include "qkv/error.h"
#include "qkv/ops.h"
#include "qkv/runtime.h"
#include "sublayer_oracle.h"
#include "support/gradcheck.h"

using namespace qkv;
using namespace qkv::testing::attention_cases;
using qkv::testing::check_close;

namespace {

constexpr NormType kRms = NormType::rmsnorm;

std::vector<Case> qk_cases() {
  return {
      {.rope = true},
      {.qk_norm = true},
      {.padded = true, .p = 0.2f, .qk_norm = true, .rope = true},
      {.causal = false, .padded = true, .bias = false, .rope = true},
      {.norm = Norm::post, .qk_norm = true, .rope = true, .norm_type = kRms},
      {.norm_type = kRms},
      {.cross = true, .causal = false, .padded = true, .Tk = 5, .qk_norm = true},
      {.norm = Norm::post, .cross = true, .causal = false, .Tk = 4, .qk_norm = true,
       .norm_type = kRms},
      // Two blocks of query rows; two tiles of keys (the online softmax rescales).
      {.p = 0.2f, .B = 1, .Tq = 70, .Tk = 70, .qk_norm = true, .rope = true},
      {.B = 1, .Tq = 300, .Tk = 300, .C = 4, .NH = 1, .qk_norm = true, .rope = true},
  };
}

}  // namespace

TEST_CASE("attention: qk_norm, rope and rmsnorm equal the composed ops, on any thread count") {
  check_on_threads(qk_cases(), {1, 2, 3});
}

TEST_CASE("attention: qk_norm, rope and rmsnorm gradients match finite differences") {
  const Case small{.B = 2, .Tq = 5, .Tk = 5, .C = 8, .NH = 2};
  SUBCASE("rope, causal, with biases") {
    Case k = small;
    k.rope = true;
    check_gradients(k);
  }
  SUBCASE("qk_norm then rope, bidirectional, padding, dropout") {
    Case k = small;
    k.qk_norm = k.rope = true, k.causal = false, k.padded = true, k.p = 0.2f;
    check_gradients(k);
  }
  SUBCASE("qk_norm in cross-attention, the memory's keys too") {
    Case k = small;
    k.cross = true, k.causal = false, k.Tk = 3, k.qk_norm = true;
    check_gradients(k);
  }
  SUBCASE("rmsnorm before the sublayer and after it") {
    for (Norm norm : {Norm::pre, Norm::post}) {
      Case k = small;
      k.norm = norm, k.norm_type = kRms, k.qk_norm = k.rope = true;
      check_gradients(k);
    }
  }
}

TEST_CASE("attention: with rope and a KV cache, chunks of positions give the full pass's outputs") {
  NoGradGuard no_grad;
  Rng rng(21);
  for (bool qk_norm : {false, true}) {
    CAPTURE(qk_norm);
    const Case k{.B = 2, .Tq = 9, .Tk = 9, .qk_norm = qk_norm, .rope = true};
    const Inputs in = make_inputs(k, rng);
    const Tensor full = attention(in.x, params(in, k, nullptr));
    KVCache cache;
    std::vector<Tensor> parts;
    int64_t t0 = 0;
    for (int64_t n : {1, 3, 1, 4}) {
      AttentionParams p = params(in, k, nullptr);
      p.cache = &cache;
      parts.push_back(attention(narrow(in.x, 1, t0, n), p));
      t0 += n;
    }
    check_close(concat(parts, 1), full, "cached outputs", 1e-5);
  }
}

TEST_CASE("attention: with rope, recorded probabilities are the oracle's") {
  NoGradGuard no_grad;
  Rng rng(23);
  const Case k{.padded = true, .Tq = 70, .Tk = 70, .C = 8, .NH = 2, .qk_norm = true, .rope = true};
  const Inputs in = make_inputs(k, rng);
  Tensor pa, pb;
  AttentionParams a = params(in, k, nullptr), b = a;
  a.probabilities = &pa, b.probabilities = &pb;
  check_close(attention(in.x, a), testing::attention_oracle(in.x, b), "output");
  check_close(pa, pb, "probabilities", 1e-5);
}

TEST_CASE("attention: rope and rmsnorm misuse are errors naming the op") {
  NoGradGuard no_grad;
  Rng rng(25);
  const Case k{.rope = true};
  const Inputs in = make_inputs(k, rng);
  auto fails = [&](const AttentionParams& p, const std::string& text, const Tensor& x) {
    CAPTURE(text);
    CHECK_THROWS_WITH_AS(attention(x, p), doctest::Contains(text.c_str()), Error);
  };
  const AttentionParams good = params(in, k, nullptr);
  AttentionParams p = good;
  p.memory = in.x, p.w_mem = Tensor::zeros({16, 8}), p.w_in = Tensor::zeros({8, 8});
  p.b_in = Tensor();
  fails(p, "attention: rotary is for self-attention", in.x);
  p = good, p.rotary = rotary_table(7, 2, 10000.0);
  fails(p, "rotary.cos [7, 1] must be [7, 2]", in.x);
  KVCache cache;
  p = good, p.cache = &cache;
  attention(in.x, p);  // fills the table's 7 positions
  fails(p, "attention: positions 7..13 are past the rotary table's 7", in.x);
  p = good, p.residual.norm_type = NormType::rmsnorm, p.residual.ln_bias = Tensor::zeros({8});
  fails(p, "attention: rmsnorm takes no bias", in.x);
  CHECK_THROWS_WITH_AS(rotary_table(4, 3, 10000.0), doctest::Contains("an even head size"), Error);
}
