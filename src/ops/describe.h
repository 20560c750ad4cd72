// Internal: how an op's error names a tensor: its role, its parameter name when it has one, and
// its shape ("w_in 'blocks.0.attn.qkv.weight' [384, 128]").
#pragma once

#include <fmt/format.h>

#include <string>

#include "qkv/tensor.h"

namespace qkv {

inline std::string describe(const char* role, const Tensor& t) {
  if (!t.defined()) return fmt::format("{} (undefined)", role);
  if (t.name().empty()) return fmt::format("{} {}", role, t.shape());
  return fmt::format("{} '{}' {}", role, t.name(), t.shape());
}

}  // namespace qkv
