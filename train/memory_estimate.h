// How much memory a model and a training step need, estimated from the config alone (in double
// arithmetic, which no size can overflow), and checked against what this process may use before
// anything is allocated: a model too big for the machine is one line naming the keys to lower,
// not a crash in the allocator.
#pragma once

#include <cstdint>

#include "qkv/nn/model_config.h"

namespace qkv::train {

// Bytes this process may use: physical memory, or less under a cgroup or RLIMIT_AS limit.
double usable_memory_bytes();

// Approximate bytes of the weights alone, and of training: weights, gradients, AdamW's two
// moments, and one step's activations for batch_size sequences of block_size characters.
double model_bytes(const nn::ModelConfig& m);
double training_bytes(const nn::ModelConfig& m, int64_t batch_size);

// Throw qkv::Error "the model needs ~N GB, the machine has M GB; lower ..." when the estimate
// is above usable_memory_bytes().
void check_model_fits(const nn::ModelConfig& m);
void check_training_fits(const nn::ModelConfig& m, int64_t batch_size);

}  // namespace qkv::train
