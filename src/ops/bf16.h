// Internal: bfloat16, what the bf16 GEMMs read (gemm.h): float's sign, exponent and top 7
// mantissa bits. The conversion rounds to nearest even in plain integer arithmetic, which
// compilers vectorise, so only the GEMM library needs the CPU's AVX512_BF16.
#pragma once

#include <bit>
#include <cstdint>
#include <memory>

#include "qkv/tensor.h"

namespace qkv {

struct bf16 {
  uint16_t bits = 0;

  bf16() = default;
  explicit bf16(float f) {
    const uint32_t u = std::bit_cast<uint32_t>(f);
    // A NaN stays a (quiet) NaN instead of rounding up into an infinity.
    bits = (u & 0x7FFFFFFFu) > 0x7F800000u ? uint16_t((u >> 16) | 0x40u)
                                           : uint16_t((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
  }
  explicit operator float() const { return std::bit_cast<float>(uint32_t(bits) << 16); }
};

// dst[i] = T(src[i]) for i in [0, n): a copy for floats, rounding for bf16.
template <class T>
inline void convert(T* dst, const float* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = T(src[i]);
}

// n elements of T in a tensor's storage (allocated as floats by the caching allocator).
template <class T>
inline Tensor empty_of(int64_t n) {
  return Tensor::empty({(n * int64_t(sizeof(T)) + 3) / 4});
}
template <class T>
inline T* data_of(Tensor t) {
  return t.defined() ? reinterpret_cast<T*>(t.data()) : nullptr;
}

// w's data as bf16: its copy in TensorImpl::bf16, made on first use and remade when w's storage
// version has moved on since. Call outside parallel regions (it may allocate).
const bf16* bf16_copy(const Tensor& w);

// For a writer that updates w and its bf16 copy together (AdamW): the copy when it is current,
// else null; having written both, it calls bf16_copy_written(w).
bf16* current_bf16_copy(const Tensor& w);
void bf16_copy_written(const Tensor& w);

}  // namespace qkv
