// The precision decisions of include/qkv/precision.h.
#include "qkv/precision.h"

#include <fmt/format.h>

#include "qkv/error.h"

namespace qkv {

Bf16Support bf16_support(const char* qkv_cpu_bf16) {
  if (qkv_cpu_bf16) {
    const std::string forced = qkv_cpu_bf16;
    QKV_CHECK(forced == "0" || forced == "1",
              "QKV_CPU_BF16='{}' is not 0 (bf16 off) or 1 (bf16 where the CPU has AVX512_BF16); "
              "set one of those or unset it",
              forced);
    if (forced == "0") return {false, "QKV_CPU_BF16=0 turns bf16 off"};
  }
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512bf16")) return {true, "this CPU has AVX512_BF16"};
  return {false, "this CPU has no AVX512_BF16"};
}

std::string attention_heads_rule() {
  return fmt::format(
      "attention heads in bf16 where head_size x keys >= {} and without a KV cache, else fp32",
      kBf16HeadTile);
}

PrecisionChoice choose_precision(PrecisionSetting setting, const std::string& what,
                                 const Bf16Support& support) {
  const std::string bf16_why = fmt::format("{}; {}", support.why, attention_heads_rule());
  switch (setting) {
    case PrecisionSetting::fp32:
      return {Precision::fp32, fmt::format("{} = fp32", what)};
    case PrecisionSetting::bf16:
      QKV_CHECK(support.usable, "{} = bf16 needs AVX512_BF16, but {}; use auto or fp32", what,
                support.why);
      return {Precision::bf16, fmt::format("{} = bf16: {}", what, bf16_why)};
    case PrecisionSetting::automatic:
      break;
  }
  return support.usable
             ? PrecisionChoice{Precision::bf16, fmt::format("{} = auto: {}", what, bf16_why)}
             : PrecisionChoice{Precision::fp32, fmt::format("{} = auto: {}", what, support.why)};
}

}  // namespace qkv
