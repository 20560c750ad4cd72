// attention: the sublayer op against its composed oracle (sublayer_oracle.h) for every option,
// on several thread counts; its gradients against finite differences; the KV cache; recorded
// probabilities; and errors.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "qkv/error.h"
#include "qkv/ops.h"
#include "qkv/runtime.h"
#include "attention_cases.h"
#include "sublayer_oracle.h"
#include "support/gradcheck.h"

using namespace qkv;
using qkv::testing::check_close;
using qkv::testing::copy_of;

namespace {

using namespace qkv::testing::attention_cases;

// Every combination of norm, kind, mask, padding, dropout and bias, on 1, 2 and 3 threads (B = 3
// sequences: fewer than some thread counts' parts of the heads).
std::vector<Case> option_cases() {
  std::vector<Case> cases;
  int n = 0;
  for (Norm norm : {Norm::pre, Norm::post})
    for (int kind = 0; kind < 3; ++kind)
      for (bool padded : {false, true})
        for (float p : {0.0f, 0.2f}) {
          Case k;
          k.norm = norm, k.padded = padded, k.p = p, k.bias = ++n % 2 == 0;
          k.cross = kind == 2, k.causal = kind == 0;
          if (k.cross) k.Tk = 5;
          cases.push_back(k);
        }
  return cases;
}

}  // namespace

TEST_CASE("attention: equals the composed ops for every option, on any thread count") {
  check_on_threads(option_cases(), {1, 2, 3});
}

TEST_CASE("attention: equals the composed ops across blocks and tiles, and when Tq != Tk") {
  for (int threads : {1, 2}) {
    CAPTURE(threads);
    set_num_threads(threads);
    // 70 rows: two blocks of query rows, the second partial; one sequence for two threads.
    check_against_oracle({.p = 0.2f, .B = 1, .Tq = 70, .Tk = 70, .C = 8, .NH = 2});
    // 300 keys: two tiles of keys, so the online softmax rescales; causal and bidirectional.
    check_against_oracle({.B = 1, .Tq = 300, .Tk = 300, .C = 4, .NH = 1});
    check_against_oracle({.causal = false,
                          .padded = true,
                          .p = 0.1f,
                          .B = 2,
                          .Tq = 300,
                          .Tk = 300,
                          .C = 4,
                          .NH = 1});
    // Cross-attention with fewer and with more keys than queries; causal cross-attention has
    // queries that see no key at all when Tq > Tk.
    check_against_oracle({.cross = true, .causal = false, .padded = true, .Tq = 3, .Tk = 11});
    check_against_oracle({.norm = Norm::post, .cross = true, .causal = false, .Tq = 9, .Tk = 4});
    check_against_oracle({.cross = true, .causal = true, .p = 0.2f, .Tq = 9, .Tk = 4});
    check_against_oracle({.cross = true, .causal = true, .Tq = 70, .Tk = 300, .C = 4, .NH = 1});
  }
  set_num_threads(0);
}

TEST_CASE("attention: gradients match finite differences") {
  const Case small{.B = 2, .Tq = 5, .Tk = 5, .C = 4, .NH = 2};
  SUBCASE("pre-norm, causal self-attention with biases") { check_gradients(small); }
  SUBCASE("post-norm, bidirectional, padding, no biases") {
    Case k = small;
    k.norm = Norm::post, k.causal = false, k.padded = true, k.bias = false;
    check_gradients(k);
  }
  SUBCASE("cross-attention with padding, Tq != Tk") {
    Case k = small;
    k.cross = true, k.causal = false, k.padded = true, k.Tk = 3;
    check_gradients(k);
  }
  SUBCASE("dropout on the probabilities and the output") {
    Case k = small;
    k.p = 0.3f;
    check_gradients(k);
  }
}

TEST_CASE("attention: x as its own memory gets the gradients of both roles") {
  Rng rng(4);
  Case k{.cross = true, .causal = false, .B = 2, .Tq = 4, .Tk = 4};
  const Inputs a = make_inputs(k, rng), b = copy(a);
  AttentionParams pa = params(a, k, nullptr), pb = params(b, k, nullptr);
  pa.memory = a.x, pb.memory = b.x;
  Tensor ya = attention(a.x, pa), yb = testing::attention_oracle(b.x, pb);
  check_close(ya, yb, "output");
  const Tensor seed = Tensor::randn(ya.shape(), rng);
  ya.backward(seed);
  yb.backward(seed);
  check_close(a.x.grad(), b.x.grad(), "gradient of x");
  check_close(a.w_mem.grad(), b.w_mem.grad(), "gradient of w_mem");
}

TEST_CASE("attention: the same bits twice on a fixed thread count") {
  set_num_threads(2);
  Case k{.p = 0.2f, .B = 3, .Tq = 70, .Tk = 70};
  std::vector<std::vector<float>> runs;
  for (int run = 0; run < 2; ++run) {
    Rng rng(3), drop(9);
    const Inputs in = make_inputs(k, rng);
    Tensor y = attention(in.x, params(in, k, &drop));
    y.backward(Tensor::randn(y.shape(), rng));
    runs.push_back(y.to_vector());
    for (const Tensor& t : in.leaves()) runs.push_back(t.grad().to_vector());
  }
  const size_t half = runs.size() / 2;
  for (size_t i = 0; i < half; ++i) CHECK(runs[i] == runs[half + i]);
  set_num_threads(0);
}

TEST_CASE("attention: with a KV cache, chunks of positions give the full pass's outputs") {
  NoGradGuard no_grad;
  Rng rng(21);
  for (Norm norm : {Norm::pre, Norm::post}) {
    CAPTURE(norm == Norm::pre);
    Case k{.norm = norm, .B = 2, .Tq = 9, .Tk = 9};
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
      CHECK(cache.length == t0);
    }
    check_close(concat(parts, 1), full, "cached outputs", 1e-5);
  }
  SUBCASE("cross-attention projects the memory once") {
    Case k{.cross = true, .causal = false, .B = 2, .Tq = 3, .Tk = 5};
    const Inputs in = make_inputs(k, rng);
    const Tensor full = attention(in.x, params(in, k, nullptr));
    KVCache cache;
    AttentionParams p = params(in, k, nullptr);
    p.cache = &cache;
    const Tensor first = attention(narrow(in.x, 1, 0, 2), p);
    REQUIRE(cache.kv.defined());
    CHECK(cache.length == 5);
    const Tensor kv = cache.kv;
    const Tensor second = attention(narrow(in.x, 1, 2, 1), p);
    CHECK(cache.kv.impl() == kv.impl());
    check_close(concat({first, second}, 1), full, "cached cross outputs", 1e-5);
  }
}

TEST_CASE("attention: a copied cache is not changed by the other copy's appends") {
  NoGradGuard no_grad;
  Rng rng(22);
  Case k{.B = 1, .Tq = 4, .Tk = 4};
  const Inputs in = make_inputs(k, rng);
  KVCache parent;
  AttentionParams p = params(in, k, nullptr);
  p.cache = &parent;
  attention(narrow(in.x, 1, 0, 3), p);
  const std::vector<float> before = narrow(parent.kv, 1, 0, 3).to_vector();
  KVCache child = parent;
  p.cache = &child;
  attention(narrow(in.x, 1, 3, 1), p);
  CHECK(parent.length == 3);
  CHECK(child.length == 4);
  CHECK(narrow(parent.kv, 1, 0, 3).to_vector() == before);
}

TEST_CASE("attention: recorded probabilities are the oracle's softmax, rows summing to 1") {
  NoGradGuard no_grad;
  Rng rng(23);
  for (const Case& k : {Case{.padded = true, .Tq = 70, .Tk = 70, .C = 4, .NH = 2},
                        Case{.cross = true, .causal = true, .padded = true, .Tq = 6, .Tk = 3}}) {
    CAPTURE(describe(k));
    const Inputs in = make_inputs(k, rng);
    Tensor pa, pb;
    AttentionParams a = params(in, k, nullptr), b = a;
    a.probabilities = &pa, b.probabilities = &pb;
    check_close(attention(in.x, a), testing::attention_oracle(in.x, b), "output");
    check_close(pa, pb, "probabilities", 1e-5);
    for (int64_t row = 0; row < pa.numel() / k.Tk; ++row) {
      double sum = 0;
      for (int64_t j = 0; j < k.Tk; ++j) sum += pa.data()[row * k.Tk + j];
      CHECK((std::abs(sum - 1.0) < 1e-5 || sum == 0.0));  // 0: a query that sees no key
    }
  }
}

TEST_CASE("attention: NoGradGuard records no node and gives the same values") {
  Rng rng(24);
  Case k{.p = 0.2f};
  const Inputs in = make_inputs(k, rng);
  Rng d1(1), d2(1);
  const Tensor with = attention(in.x, params(in, k, &d1));
  NoGradGuard no_grad;
  const Tensor without = attention(in.x, params(in, k, &d2));
  CHECK(with.requires_grad());
  CHECK_FALSE(without.requires_grad());
  CHECK(without.to_vector() == with.to_vector());
}

TEST_CASE("attention: bad shapes and options are errors naming the op and the tensor") {
  Rng rng(25);
  const Case k;
  const Inputs in = make_inputs(k, rng);
  auto fails = [&](const AttentionParams& p, const std::string& text, const Tensor& x) {
    CAPTURE(text);
    CHECK_THROWS_WITH_AS(attention(x, p), doctest::Contains(text.c_str()), Error);
  };
  const AttentionParams good = params(in, k, nullptr);
  AttentionParams p = good;
  fails(p, "expected [B, T, C]", Tensor::zeros({3, 8}));
  p.n_head = 3;
  fails(p, "do not split into n_head = 3", in.x);
  p = good, p.w_in = in.w_out;
  fails(p, "w_in [8, 8] must be [24, 8]", in.x);
  p = good, p.w_mem = Tensor::zeros({16, 8});
  fails(p, "no memory is given", in.x);
  p = good, p.memory = Tensor::zeros({2, 5, 8});
  fails(p, "memory [2, 5, 8] must be [B, Tk, C] = [3, Tk, 8]", in.x);
  p = good, p.key_padding = Tensor::zeros({3, 6});
  fails(p, "key_padding is [3, 6], expected [B, Tk] = [3, 7]", in.x);
  p = good, p.residual.dropout = 1.0f;
  fails(p, "dropout must be in [0, 1)", in.x);
  p = good, p.residual.ln_bias = in.b_out;
  fails(p, "one tensor is passed as both ln_bias and b_out", in.x);
  KVCache cache;
  p = good, p.cache = &cache;
  fails(p, "a KV cache is for decoding, without grad", in.x);
}
