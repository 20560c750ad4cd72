// bf16 GEMMs on oneDNN's matmul (brgemm kernels with AVX512_BF16), which PyTorch's CPU autocast
// uses too. A primitive is made once per shape, layout and epilogue and kept per thread (making
// one costs far more than running it: docs/kernels.md), so each thread's row blocks of a
// model's few shapes reuse them from the second step on.
#include <omp.h>

#include <bit>
#include <oneapi/dnnl/dnnl.hpp>
#include <optional>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "ops/gemm.h"

namespace qkv {
namespace {

using dnnl::memory;

struct Key {
  int64_t M, N, K, lda, ldb, ldc;
  float alpha, beta;
  bool ta, tb, bias, bf16_out;
  bool alone = false;  // made and run outside a parallel region, on one thread (see run)
  bool operator==(const Key&) const = default;
};

struct KeyHash {
  size_t operator()(const Key& k) const {
    size_t h = 1469598103934665603ull;  // FNV-1a over the fields
    auto mix = [&h](uint64_t v) { h = (h ^ v) * 1099511628211ull; };
    for (int64_t v : {k.M, k.N, k.K, k.lda, k.ldb, k.ldc}) mix(uint64_t(v));
    mix(std::bit_cast<uint32_t>(k.alpha));
    mix(std::bit_cast<uint32_t>(k.beta));
    mix(uint64_t(k.ta) | uint64_t(k.tb) << 1 | uint64_t(k.bias) << 2 | uint64_t(k.bf16_out) << 3 |
        uint64_t(k.alone) << 4);
    return h;
  }
};

struct Primitive {
  dnnl::matmul matmul;
  memory src, weights, dst, bias;
};

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// Row-major op(X) of rows x cols stored with leading dim ld (transposed: stored cols x rows).
memory::desc matrix(int64_t rows, int64_t cols, int64_t ld, bool trans, memory::data_type t) {
  return memory::desc({rows, cols}, t, trans ? memory::dims{1, ld} : memory::dims{ld, 1});
}

Primitive make(const Key& k) {
  using dt = memory::data_type;
  const memory::desc a = matrix(k.M, k.K, k.lda, k.ta, dt::bf16);
  const memory::desc b = matrix(k.K, k.N, k.ldb, k.tb, dt::bf16);
  const memory::desc c = matrix(k.M, k.N, k.ldc, false, k.bf16_out ? dt::bf16 : dt::f32);
  const memory::desc bias = k.bias ? memory::desc({1, k.N}, dt::f32, {k.N, 1}) : memory::desc();
  dnnl::primitive_attr attr;
  if (k.alpha != 1.0f) attr.set_output_scales(0, {k.alpha});
  if (k.beta != 0.0f) {
    dnnl::post_ops ops;
    ops.append_sum(k.beta);
    attr.set_post_ops(ops);
  }
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, bias, c), attr, engine());
  Primitive p{dnnl::matmul(pd),
              memory(a, engine(), DNNL_MEMORY_NONE),
              memory(b, engine(), DNNL_MEMORY_NONE),
              memory(c, engine(), DNNL_MEMORY_NONE),
              {}};
  if (k.bias) p.bias = memory(bias, engine(), DNNL_MEMORY_NONE);
  return p;
}

// The calling thread's OpenMP team size set to 1 for the lifetime of this object.
class OneThread {
 public:
  OneThread() { omp_set_num_threads(1); }
  ~OneThread() { omp_set_num_threads(before_); }
  OneThread(const OneThread&) = delete;
  OneThread& operator=(const OneThread&) = delete;

 private:
  int before_ = omp_get_max_threads();
};

void run(Key k, const bf16* A, const bf16* B, void* C, const float* bias) {
  // The ops split their GEMMs over the threads themselves (gemm.h), so one that reaches here
  // outside a parallel region was left whole because it is small; oneDNN would split it again
  // over every thread, which it decides when it makes the primitive. Made and run on one thread,
  // a decoding step no longer wakes the team for each of its small products. The key keeps such
  // a primitive apart from one of the same shape made inside a region for the team's size.
  k.alone = !omp_in_parallel();
  std::optional<OneThread> one;
  if (k.alone) one.emplace();
  thread_local std::unordered_map<Key, Primitive, KeyHash> cache;
  thread_local dnnl::stream stream(engine());
  auto it = cache.find(k);
  if (it == cache.end()) it = cache.emplace(k, make(k)).first;
  Primitive& p = it->second;
  p.src.set_data_handle(const_cast<bf16*>(A));
  p.weights.set_data_handle(const_cast<bf16*>(B));
  p.dst.set_data_handle(C);
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, p.src}, {DNNL_ARG_WEIGHTS, p.weights}, {DNNL_ARG_DST, p.dst}};
  if (bias) {
    // oneDNN scales the bias with the product (alpha·(A·B + bias)): hand it bias / alpha.
    thread_local std::vector<float> scaled;
    if (k.alpha != 1.0f) {
      scaled.assign(bias, bias + k.N);
      for (float& b : scaled) b /= k.alpha;
      bias = scaled.data();
    }
    p.bias.set_data_handle(const_cast<float*>(bias));
    args.emplace(DNNL_ARG_BIAS, p.bias);
  }
  p.matmul.execute(stream, args);
}

}  // namespace

template <class Out>
void gemm_ld(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A,
             int64_t lda, const bf16* B, int64_t ldb, float beta, Out* C, int64_t ldc,
             const float* bias) {
  if (M == 0 || N == 0) return;
  if (K == 0) {  // an empty sum: C = beta·C + bias
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n)
        C[m * ldc + n] =
            Out((beta == 0.0f ? 0.0f : beta * float(C[m * ldc + n])) + (bias ? bias[n] : 0.0f));
    return;
  }
  run({M, N, K, lda, ldb, ldc, alpha, beta, ta, tb, bias != nullptr, std::is_same_v<Out, bf16>}, A,
      B, C, bias);
}
template void gemm_ld(bool, bool, int64_t, int64_t, int64_t, float, const bf16*, int64_t,
                      const bf16*, int64_t, float, float*, int64_t, const float*);
template void gemm_ld(bool, bool, int64_t, int64_t, int64_t, float, const bf16*, int64_t,
                      const bf16*, int64_t, float, bf16*, int64_t, const float*);

const bf16* bf16_copy(const Tensor& w) {
  TensorImpl& t = *w.impl();
  if (!t.bf16 || t.bf16_version != t.storage->version) {
    const int64_t n = w.numel();
    if (!t.bf16) t.bf16 = std::make_shared<Storage>((n + 1) / 2);
    convert(reinterpret_cast<bf16*>(t.bf16->data), w.data(), n);
    t.bf16_version = t.storage->version;
  }
  return reinterpret_cast<const bf16*>(t.bf16->data);
}

bf16* current_bf16_copy(const Tensor& w) {
  const TensorImpl& t = *w.impl();
  return t.bf16 && t.bf16_version == t.storage->version ? reinterpret_cast<bf16*>(t.bf16->data)
                                                        : nullptr;
}

void bf16_copy_written(const Tensor& w) { w.impl()->bf16_version = w.impl()->storage->version; }

}  // namespace qkv
