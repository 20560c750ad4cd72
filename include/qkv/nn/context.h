// What one forward pass through a model runs with, decided by its caller and handed down to every
// layer: what the GEMMs compute in, and the stream dropout masks are drawn from. Modules hold
// only their weights, so nothing about a pass is a mode left set on them.
#pragma once

#include "qkv/precision.h"
#include "qkv/rng.h"

namespace qkv::nn {

struct Context {
  Precision precision = Precision::fp32;  // the model's (set_precision in qkv/nn/models.h)
  // Training: every dropout mask of the pass is drawn from here. Null: no dropout (evaluation,
  // generation).
  Rng* dropout = nullptr;
};

}  // namespace qkv::nn
