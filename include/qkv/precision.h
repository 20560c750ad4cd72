// Precision, decided here and only here: what the GEMMs compute in, whether this CPU can run
// bf16 GEMMs (and why, for the start-up log), and which of attention's GEMMs follow the choice.
// A model receives the choice once (set_precision, qkv/nn/models.h) and hands it to its layers
// with each pass (qkv/nn/context.h), which give it to their ops.
#pragma once

#include <cstdint>
#include <string>

#include "qkv/enum_names.h"
#include "qkv/environment.h"

namespace qkv {

// What GEMMs compute in. bf16: inputs rounded to bfloat16 (a weight once per write of it, see
// Tensor::data), products accumulated in fp32, results fp32 (oneDNN, on CPUs with
// AVX512_BF16). Everything else stays fp32 either way.
enum class Precision { fp32, bf16 };
constexpr EnumNames<2> enum_names(Precision) { return {"fp32", "bf16"}; }

// The train.precision / --precision setting: auto picks bf16 where bf16 GEMMs can run, else fp32.
enum class PrecisionSetting { automatic, fp32, bf16 };
constexpr EnumNames<3> enum_names(PrecisionSetting) { return {"auto", "fp32", "bf16"}; }

// Whether bf16 GEMMs can run in this process, and why (a clause for the start-up log).
struct Bf16Support {
  bool usable = false;
  std::string why;  // "this CPU has AVX512_BF16", "QKV_CPU_BF16=0 turns bf16 off", ...
};

// qkv_cpu_bf16: the value of the QKV_CPU_BF16 environment variable, null when it is unset.
// "0" turns bf16 off on any CPU (so tests can take the fp32 path on a bf16 machine); "1" or
// unset leave it to the CPU (AVX512_BF16, which vdpbf16ps needs). Other values throw qkv::Error.
Bf16Support bf16_support(const char* qkv_cpu_bf16);
// The same from the environment read at start-up (environment.h).
inline Bf16Support bf16_support(const Environment& env) {
  return bf16_support(env.qkv_cpu_bf16.empty() ? nullptr : env.qkv_cpu_bf16.c_str());
}

// What a setting means here, and why (for the start-up log). Throws qkv::Error for bf16 where
// bf16 cannot run (`what` names the setting in the message, e.g. "train.precision").
struct PrecisionChoice {
  Precision precision;
  std::string why;
};
PrecisionChoice choose_precision(PrecisionSetting setting, const std::string& what,
                                 const Bf16Support& support);

// Attention in bf16 runs its projections in bf16, and its heads' GEMMs (scores, weighted
// values) too only where a head's tile is large enough for the bf16 GEMM's larger per-call cost
// to pay off, and never over a KV cache (it holds fp32 keys and values). Measurements:
// docs/precision.md.
constexpr int64_t kBf16HeadTile = 4096;  // head_size × keys
constexpr bool attention_heads_in_bf16(int64_t head_size, int64_t keys, bool kv_cache) {
  return head_size * keys >= kBf16HeadTile && !kv_cache;
}
std::string attention_heads_rule();  // the rule above in words, for the start-up log

}  // namespace qkv
