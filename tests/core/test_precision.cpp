// Where precision is decided: QKV_CPU_BF16's values, the setting's meaning here, the log's why.
#include <doctest/doctest.h>

#include "qkv/error.h"
#include "qkv/precision.h"

using namespace qkv;

namespace {

bool native_bf16() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512bf16");
}

}  // namespace

TEST_CASE("precision: auto is bf16 exactly where the CPU has AVX512_BF16") {
  const bool native = native_bf16();
  for (const char* value : {static_cast<const char*>(nullptr), "1"}) {
    const Bf16Support s = bf16_support(value);
    CHECK(s.usable == native);
    CHECK(s.why == (native ? "this CPU has AVX512_BF16" : "this CPU has no AVX512_BF16"));
  }
  const PrecisionChoice a =
      choose_precision(PrecisionSetting::automatic, "train.precision", bf16_support(nullptr));
  CHECK(a.precision == (native ? Precision::bf16 : Precision::fp32));
  CHECK(a.why.find("train.precision = auto: this CPU has") == 0);
  // bf16 runs say which of attention's GEMMs follow it.
  CHECK((a.why.find(attention_heads_rule()) != std::string::npos) == native);
  CHECK(choose_precision(PrecisionSetting::fp32, "x", bf16_support(nullptr)).precision ==
        Precision::fp32);
}

TEST_CASE("precision: QKV_CPU_BF16=0 turns bf16 off and says so; an explicit bf16 is an error") {
  const Bf16Support off = bf16_support("0");
  CHECK_FALSE(off.usable);
  const PrecisionChoice a = choose_precision(PrecisionSetting::automatic, "--precision", off);
  CHECK(a.precision == Precision::fp32);
  CHECK(a.why == "--precision = auto: QKV_CPU_BF16=0 turns bf16 off");
  CHECK_THROWS_WITH_AS(choose_precision(PrecisionSetting::bf16, "train.precision", off),
                       "train.precision = bf16 needs AVX512_BF16, but QKV_CPU_BF16=0 turns bf16 "
                       "off; use auto or fp32",
                       Error);
}

TEST_CASE("precision: QKV_CPU_BF16 other than 0 or 1 is an error naming the value") {
  for (const char* value : {"", "yes", "2", " 0"})
    CHECK_THROWS_WITH_AS(bf16_support(value), doctest::Contains("is not 0 (bf16 off) or 1"), Error);
}

TEST_CASE("precision: attention's heads run in bf16 from a head_size x keys tile of 4096") {
  CHECK(attention_heads_in_bf16(64, 64, false));
  CHECK(attention_heads_in_bf16(32, 128, false));
  CHECK_FALSE(attention_heads_in_bf16(32, 64, false));
  CHECK_FALSE(attention_heads_in_bf16(64, 256, true));  // a KV cache holds fp32 keys
}
