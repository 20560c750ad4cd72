// bf16 compute (Precision::bf16): the rounding, the bf16 GEMM against fp32 within the bound that
// rounded inputs allow, and each op that takes a precision against its fp32 twin. The bf16 cases
// need a CPU with AVX512_BF16 and say so when it has none.
#include <doctest/doctest.h>
#include <omp.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <vector>

#include "ops/bf16.h"
#include "ops/gemm.h"
#include "qkv/nn/linear.h"
#include "qkv/ops.h"
#include "qkv/optim/adamw.h"
#include "qkv/precision.h"
#include "sublayer_oracle.h"

using namespace qkv;
using qkv::testing::check_close;
using qkv::testing::copy_of;

namespace {

bool skip_without_bf16() {
  if (bf16_support(std::getenv("QKV_CPU_BF16")).usable) return false;
  MESSAGE("this CPU has no AVX512_BF16: the bf16 cases are not run");
  return true;
}

std::vector<float> random(int64_t n, Rng& rng) {
  std::vector<float> v(static_cast<size_t>(n), 0.0f);
  for (float& x : v) x = rng.normal();
  return v;
}

std::vector<bf16> rounded(const std::vector<float>& v) {
  std::vector<bf16> r(v.size());
  convert(r.data(), v.data(), int64_t(v.size()));
  return r;
}

}  // namespace

TEST_CASE("bf16: rounds to nearest even, and keeps infinities and NaN") {
  auto bits = [](float f) { return bf16(f).bits; };
  CHECK(bits(1.0f) == 0x3F80);
  CHECK(float(bf16(1.0f + 1.0f / 256)) == 1.0f);               // a tie goes to the even 1.0
  CHECK(float(bf16(1.0f + 3.0f / 256)) == 1.0f + 1.0f / 64);   // a tie goes to the even 1 + 2^-6
  CHECK(float(bf16(1.0f + 1.0f / 200)) == 1.0f + 1.0f / 128);  // above the tie: up
  CHECK(float(bf16(-2.5f)) == -2.5f);                          // exact values stay exact
  CHECK(std::isinf(float(bf16(std::numeric_limits<float>::infinity()))));
  CHECK(std::isnan(float(bf16(std::numeric_limits<float>::quiet_NaN()))));
  // A NaN whose payload lies in the dropped bits must not round up into an infinity.
  CHECK(std::isnan(float(bf16(std::bit_cast<float>(0x7F800001u)))));
  CHECK(float(bf16(3.4e38f)) == std::numeric_limits<float>::infinity());  // overflows as IEEE
}

// Each product a·b of rounded inputs is within 2^-8·|a·b| of the exact one (each factor within
// 2^-9 relative), and oneDNN sums them in fp32: so |C_bf16 - C_fp32| <= 2^-8·Σ|a·b| + the fp32
// sums' own rounding (1e-5·Σ|a·b| covers K up to a few thousand). That is the bound checked.
TEST_CASE("gemm_ld: bf16 products match fp32 within the rounding of their inputs") {
  if (skip_without_bf16()) return;
  Rng rng(3);
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (float beta : {0.0f, 1.0f})
        for (bool bias : {false, true}) {
          const int64_t M = 37, N = 45, K = 130;
          CAPTURE(ta);
          CAPTURE(tb);
          CAPTURE(beta);
          CAPTURE(bias);
          const std::vector<float> A = random(M * K, rng), B = random(K * N, rng),
                                   C0 = random(M * N, rng), b = random(N, rng);
          const std::vector<bf16> A16 = rounded(A), B16 = rounded(B);
          const int64_t lda = ta ? M : K, ldb = tb ? K : N;
          std::vector<float> c32 = C0, c16 = C0;
          gemm_ld(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, beta, c32.data(), N,
                  bias ? b.data() : nullptr);
          gemm_ld(ta, tb, M, N, K, 0.5f, A16.data(), lda, B16.data(), ldb, beta, c16.data(), N,
                  bias ? b.data() : nullptr);
          int bad = 0;
          for (int64_t m = 0; m < M; ++m)
            for (int64_t n = 0; n < N; ++n) {
              double mass = 0;  // Σ|α·a·b|
              for (int64_t k = 0; k < K; ++k)
                mass += 0.5 * std::abs(double(A[ta ? k * lda + m : m * lda + k]) *
                                       double(B[tb ? n * ldb + k : k * ldb + n]));
              const double err = std::abs(double(c16[m * N + n]) - double(c32[m * N + n]));
              bad += err > (1.0 / 256 + 1e-5) * mass + 1e-6;
            }
          CHECK(bad == 0);
        }
}

TEST_CASE("gemm_ld: bf16 into bf16 is the fp32 result rounded once") {
  if (skip_without_bf16()) return;
  Rng rng(4);
  const int64_t M = 20, N = 33, K = 64;
  const std::vector<bf16> A16 = rounded(random(M * K, rng)), B16 = rounded(random(K * N, rng));
  const std::vector<float> b = random(N, rng);
  std::vector<float> c32(size_t(M * N));
  std::vector<bf16> c16(size_t(M * N));
  gemm_ld(false, false, M, N, K, 1.0f, A16.data(), K, B16.data(), N, 0.0f, c32.data(), N, b.data());
  gemm_ld(false, false, M, N, K, 1.0f, A16.data(), K, B16.data(), N, 0.0f, c16.data(), N, b.data());
  int off = 0;  // at most one bf16 step apart: the two may round sums accumulated in another order
  for (size_t i = 0; i < c32.size(); ++i)
    off += std::abs(float(c16[i]) - c32[i]) > std::abs(c32[i]) / 128 + 1e-6f;
  CHECK(off == 0);
}

// A product outside a parallel region runs on the calling thread alone (oneDNN would otherwise
// split it over the team again): the thread count it set for that is put back, whatever it was.
TEST_CASE("gemm_ld: a bf16 product outside a parallel region leaves the thread count as it was") {
  if (skip_without_bf16()) return;
  Rng rng(5);
  const int64_t M = 8, N = 16, K = 32;
  const std::vector<bf16> A16 = rounded(random(M * K, rng)), B16 = rounded(random(K * N, rng));
  std::vector<float> c(size_t(M * N));
  const int before = omp_get_max_threads();
  for (int threads : {3, 1, 2}) {
    CAPTURE(threads);
    omp_set_num_threads(threads);
    gemm_ld(false, false, M, N, K, 1.0f, A16.data(), K, B16.data(), N, 0.0f, c.data(), N);
    CHECK(omp_get_max_threads() == threads);
  }
  omp_set_num_threads(before);
}

// The ops in bf16 against fp32 on the same inputs: outputs and every gradient. Each GEMM adds
// errors of ~2^-9 relative per product, mostly cancelling over K terms; a sublayer chains three
// or four GEMMs. Measured on these inputs: at most 0.7% of a tensor's largest element. 3% is the
// bound (check_close's scale), while a wrong kernel is off by O(1).
TEST_CASE("ops: bf16 twins of linear, attention and mlp match fp32, every option") {
  if (skip_without_bf16()) return;
  // Heads of 16 channels run in fp32, heads of 64 in bf16 (ops/attention.cpp): both are checked.
  for (const int64_t C : {32, 128}) {
    CAPTURE(C);
    Rng rng(5);
    const int64_t B = 3, T = 70, NH = 2;
    // Weights scaled by 1/sqrt(C), so projections keep unit scale and attention logits stay
    // moderate at any C (q and k rounded to bf16 shift a logit of 20 by up to ~0.08, which moves
    // a peaked softmax a lot: inherent to bf16 attention, not a fault to test for).
    auto leaf = [&](Shape s, float sd) { return Tensor::randn(s, rng, sd, true); };
    const float w = 1.0f / std::sqrt(float(C));
    const Tensor x = leaf({B, T, C}, 1.0f), lw = leaf({C}, 0.5f), lb = leaf({C}, 0.5f);
    const Tensor w_in = leaf({3 * C, C}, w), w_out = leaf({C, C}, w),
                 b_in = leaf({3 * C}, 0.2f);
    const Tensor w1 = leaf({4 * C, C}, w), w2 = leaf({C, 4 * C}, w),
                 mem = leaf({B, 5, C}, 1.0f);
    const Tensor wq = leaf({C, C}, w), wm = leaf({2 * C, C}, w);
    auto twins = [&](const char* what, const std::vector<Tensor>& inputs,
                     const std::function<Tensor(const std::vector<Tensor>&, Precision)>& f) {
      CAPTURE(what);
      std::vector<Tensor> a, b;
      for (const Tensor& t : inputs) a.push_back(copy_of(t)), b.push_back(copy_of(t));
      Rng ra(9), rb(9);
      Tensor ya = f(a, Precision::fp32), yb = f(b, Precision::bf16);
      check_close(yb, ya, "output", 3e-2);
      const Tensor seed = Tensor::randn(ya.shape(), rng);
      ya.backward(seed);
      yb.backward(seed);
      for (size_t i = 0; i < a.size(); ++i)
        check_close(b[i].grad(), a[i].grad(), fmt::format("gradient of input {}", i), 3e-2);
    };
    twins("linear", {x, w1}, [](const std::vector<Tensor>& t, Precision p) {
      return linear(t[0], t[1], Tensor(), p);
    });
    for (Norm norm : {Norm::pre, Norm::post}) {
      CAPTURE(norm == Norm::pre);
      twins("self-attention", {x, lw, lb, w_in, b_in, w_out},
            [&](const std::vector<Tensor>& t, Precision p) {
              return attention(t[0],
                               {.n_head = NH,
                                .precision = p,
                                .residual = {.norm = norm, .ln_weight = t[1], .ln_bias = t[2]},
                                .w_in = t[3],
                                .b_in = t[4],
                                .w_out = t[5],
                                .causal = true});
            });
      twins("cross-attention", {x, lw, wq, wm, w_out, mem},
            [&](const std::vector<Tensor>& t, Precision p) {
              return attention(t[0], {.n_head = NH,
                                      .precision = p,
                                      .residual = {.norm = norm, .ln_weight = t[1]},
                                      .w_in = t[2],
                                      .w_mem = t[3],
                                      .w_out = t[4],
                                      .memory = t[5]});
            });
      twins("mlp", {x, lw, lb, w1, w2}, [&](const std::vector<Tensor>& t, Precision p) {
        return mlp(t[0], {.precision = p,
                          .residual = {.norm = norm, .ln_weight = t[1], .ln_bias = t[2]},
                          .w_fc = t[3],
                          .w_proj = t[4]});
      });
      // The modern recipe: q and k normalised and rotated in the projection's type (bf16 where
      // the heads are), RMSNorm, and the two other activations.
      const Rotary rotary = rotary_table(T, C / NH, 10000.0);
      const Residual rms{.norm = norm, .norm_type = NormType::rmsnorm};
      twins("self-attention, qk_norm, rope, rmsnorm", {x, lw, w_in, b_in, w_out},
            [&](const std::vector<Tensor>& t, Precision p) {
              Residual r = rms;
              r.ln_weight = t[1];
              return attention(t[0], {.n_head = NH,
                                      .precision = p,
                                      .residual = r,
                                      .w_in = t[2],
                                      .b_in = t[3],
                                      .w_out = t[4],
                                      .causal = true,
                                      .qk_norm = true,
                                      .rotary = rotary});
            });
      twins("cross-attention, qk_norm", {x, lw, wq, wm, w_out, mem},
            [&](const std::vector<Tensor>& t, Precision p) {
              return attention(t[0], {.n_head = NH,
                                      .precision = p,
                                      .residual = {.norm = norm, .ln_weight = t[1]},
                                      .w_in = t[2],
                                      .w_mem = t[3],
                                      .w_out = t[4],
                                      .memory = t[5],
                                      .qk_norm = true});
            });
      for (Activation act : {Activation::relu2, Activation::swiglu}) {
        CAPTURE(enum_name(act));
        const Tensor wg = leaf({4 * C, C}, w);
        twins("mlp, rmsnorm", {x, lw, w1, w2, wg}, [&](const std::vector<Tensor>& t, Precision p) {
          Residual r = rms;
          r.ln_weight = t[1];
          return mlp(t[0], {.precision = p,
                            .residual = r,
                            .activation = act,
                            .w_fc = t[2],
                            .w_proj = t[3],
                            .w_gate = act == Activation::swiglu ? t[4] : Tensor()});
        });
      }
    }
  }
}

TEST_CASE("bf16: a weight's copy follows every write: AdamW, load_state_dict, copy_from, data()") {
  if (skip_without_bf16()) return;
  Rng rng(6);
  nn::Linear layer(8, 3, true, rng);
  const nn::Context bf16_pass{.precision = Precision::bf16};
  const Tensor x = Tensor::randn({4, 8}, rng);
  const Tensor& w = layer.weight();
  auto check_current = [&] {
    const bf16* copy = bf16_copy(w);
    int stale = 0;
    for (int64_t i = 0; i < w.numel(); ++i) stale += copy[i].bits != bf16(w.data()[i]).bits;
    CHECK(stale == 0);
  };
  // What the layer computes, against a fresh bf16 layer given the same weights.
  auto check_output = [&] {
    nn::Linear fresh(8, 3, true, rng);
    fresh.load_state_dict(layer.state_dict());
    NoGradGuard no_grad;
    CHECK(layer.forward(bf16_pass, x).to_vector() == fresh.forward(bf16_pass, x).to_vector());
  };
  optim::AdamW opt(layer.named_parameters(), {});
  for (int step = 0; step < 3; ++step) {
    opt.zero_grad();
    sum(layer.forward(bf16_pass, x)).backward();  // makes the weight's copy on the first step
    opt.step(0.1f);
    check_current();
  }
  check_output();
  nn::Linear other(8, 3, true, rng);
  layer.load_state_dict(other.state_dict());
  check_current();
  check_output();
  Tensor writer = w;  // a handle that writes
  writer.copy_from(Tensor::randn(w.shape(), rng));
  check_output();
  float* data = writer.data();  // nothing else to call: a write needs this pointer
  for (int64_t i = 0; i < w.numel(); ++i) data[i] *= -2.0f;
  check_output();
  check_current();
}
