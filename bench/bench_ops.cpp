// GFLOP/s of the GEMM-bound ops at the transformer shapes qkv trains, next to raw cblas_sgemm
// at the same shape, so op overhead shows as the gap. Median of 7 timed runs after a warm-up.
//
//   bench_ops [threads] [filter] [precision]
//     threads: 0 or absent = all cores; filter: run only the cases whose label contains it (e.g.
//     "attention", "big"); precision: fp32 (the default) or bf16, for the attention cases
#include <cblas.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "qkv/autograd.h"
#include "qkv/ops.h"
#include "qkv/runtime.h"

namespace {

using qkv::Tensor;

constexpr int kReps = 7;

template <class F>
double median_seconds(F&& run) {
  run();  // warm-up: page faults, allocator cache, OpenBLAS buffers
  std::vector<double> s;
  for (int r = 0; r < kReps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::nth_element(s.begin(), s.begin() + kReps / 2, s.end());
  return s[kReps / 2];
}

double gflops(double flop, double seconds) { return flop / seconds * 1e-9; }

// y[N,O] = x[N,I]·W[O,I]ᵀ (+ b), the layout of qkv::linear.
void bench_linear(const std::string& label, int64_t N, int64_t O, int64_t I) {
  qkv::Rng rng(1);
  Tensor x = Tensor::randn({N, I}, rng, 1.0f, true), w = Tensor::randn({O, I}, rng, 0.02f, true);
  Tensor b = Tensor::zeros({O}, true), y = Tensor::empty({N, O}), seed = Tensor::ones({N, O});
  const double flop = 2.0 * N * O * I;
  const double raw = median_seconds([&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, O, I, 1.0f, x.data(), I, w.data(), I,
                0.0f, y.data(), O);
  });
  double mm, lin;
  {
    qkv::NoGradGuard no_grad;  // forward cost alone, no node recorded
    mm = median_seconds([&] { (void)qkv::matmul(x, w, false, true); });
    lin = median_seconds([&] { (void)qkv::linear(x, w, b); });
  }
  const double train = median_seconds([&] {
    for (const Tensor& t : {x, w, b}) t.zero_grad();
    qkv::linear(x, w, b).backward(seed);
  });
  fmt::print(
      "{:<28} {:>5}x{:<4}x{:<4}  sgemm {:6.1f}  matmul {:6.1f}  linear {:6.1f}  "
      "linear fwd+bwd {:6.1f}  GFLOP/s\n",
      label, N, O, I, gflops(flop, raw), gflops(flop, mm), gflops(flop, lin),
      gflops(3 * flop, train));
}

// The causal self-attention sublayer (qkv::attention, pre-norm) on x: [B, T, NH·HS]. FLOPs: the
// projections' 8·N·C² plus the heads' two GEMMs over the full T×T scores, 4·B·NH·T²·HS, forward;
// twice that backward (the backward's recomputed scores are not counted, nor the skipped causal
// half).
void bench_attention(const std::string& label, int64_t B, int64_t NH, int64_t T, int64_t HS,
                     qkv::Precision precision) {
  qkv::Rng rng(2);
  const int64_t C = NH * HS;
  Tensor x = Tensor::randn({B, T, C}, rng, 1.0f, true), seed = Tensor::ones({B, T, C});
  qkv::AttentionParams p{.n_head = NH,
                         .precision = precision,
                         .residual = {.ln_weight = Tensor::ones({C}, true)},
                         .w_in = Tensor::randn({3 * C, C}, rng, 0.02f, true),
                         .w_out = Tensor::randn({C, C}, rng, 0.02f, true),
                         .causal = true};
  const double flop = 8.0 * B * T * C * C + 4.0 * B * NH * T * T * HS;
  double fwd;
  {
    qkv::NoGradGuard no_grad;
    fwd = median_seconds([&] { (void)qkv::attention(x, p); });
  }
  const double train = median_seconds([&] {
    for (const Tensor& t : {x, p.residual.ln_weight, p.w_in, p.w_out}) t.zero_grad();
    qkv::attention(x, p).backward(seed);
  });
  fmt::print(
      "{:<28} B={} NH={} T={} HS={}  fwd {:6.1f} GFLOP/s ({:.2f} ms)  fwd+bwd {:6.1f} "
      "GFLOP/s ({:.2f} ms)  [full T² FLOP count, causal]\n",
      label, B, NH, T, HS, gflops(flop, fwd), fwd * 1e3, gflops(3 * flop, train), train * 1e3);
}

}  // namespace

int main(int argc, char** argv) {
  qkv::select_blas_kernel(argv);
  qkv::set_num_threads(argc > 1 ? std::atoi(argv[1]) : 0);
  const std::string filter = argc > 2 ? argv[2] : "";
  const qkv::Precision precision =
      argc > 3 && std::string(argv[3]) == "bf16" ? qkv::Precision::bf16 : qkv::Precision::fp32;
  fmt::print("{}\n", qkv::runtime_summary(qkv::read_environment()));
  auto want = [&](const std::string& label) { return label.find(filter) != std::string::npos; };

  struct LinearCase {
    const char* label;
    int64_t N, O, I;
  };
  // baby: B=12, T=64, C=128 (N = 768); big: B=64, T=256, C=384 (N = 16384).
  const LinearCase linears[] = {
      {"linear baby qkv proj", 768, 384, 128},       {"linear baby attn proj", 768, 128, 128},
      {"linear baby mlp fc", 768, 512, 128},         {"linear baby mlp proj", 768, 128, 512},
      {"linear baby lm head", 768, 65, 128},         {"linear big qkv proj", 16384, 1152, 384},
      {"linear big mlp fc", 16384, 1536, 384},       {"linear big mlp proj", 16384, 384, 1536},
      {"linear reference 1024^3", 1024, 1024, 1024},
  };
  for (const LinearCase& c : linears)
    if (want(c.label)) bench_linear(c.label, c.N, c.O, c.I);
  if (want("attention baby")) bench_attention("attention baby", 12, 4, 64, 32, precision);
  if (want("attention big")) bench_attention("attention big", 64, 6, 256, 64, precision);
}
