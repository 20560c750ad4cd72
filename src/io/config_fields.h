// The table of config keys (config.cpp reads, overrides, validates, prints and documents the
// config from it): each key, the member it sets, its meaning and its range.
#pragma once

#include <cmath>
#include <variant>

#include "qkv/io/config.h"

namespace qkv::io::detail {

template <class T>
using Ref = T& (*)(Config&);
using AnyRef = std::variant<Ref<int64_t>, Ref<double>, Ref<bool>, Ref<std::string>,
                            Ref<std::vector<std::string>>, Ref<nn::ModelKind>, Ref<nn::PosEncoding>,
                            Ref<nn::Norm>, Ref<optim::Decay>, Ref<PrecisionSetting>,
                            Ref<optim::OptimizerKind>, Ref<nn::NormType>, Ref<nn::Activation>>;

struct Range {
  double lo = -INFINITY, hi = INFINITY;
  bool lo_open = false, hi_open = false;
};

struct Field {
  const char* key;
  AnyRef ref;
  const char* meaning;
  Range range = {};
};

// Every key, in the order docs/config.md and a printed config show them.
const std::vector<Field>& fields();

}  // namespace qkv::io::detail
