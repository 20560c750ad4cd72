// How much memory a model and a training step need, estimated from the config alone (in double
// arithmetic, which no size can overflow), and checked against what this process may use before
// anything is allocated: a model too big for the machine is one line naming the keys to lower,
// not a crash in the allocator.
#pragma once

#include <cstdint>
#include <string>

#include "qkv/nn/model_config.h"

namespace qkv::train {

// Bytes this process may use: physical memory, or less under a cgroup or RLIMIT_AS limit.
double usable_memory_bytes();

// Approximate bytes of the weights alone, and of training: weights, gradients, AdamW's two
// moments, and one step's activations for batch_size sequences of block_size characters.
double model_bytes(const nn::ModelConfig& m);
double training_bytes(const nn::ModelConfig& m, int64_t batch_size);

// Approximate bytes of generating `sequences` sequences at once (a beam's hypotheses, or one
// sample) of up to `tokens` tokens: the weights, each sequence's key/value caches and logits,
// and the tokens kept.
double generation_bytes(const nn::ModelConfig& m, int64_t sequences, int64_t tokens);

// Throw qkv::Error "the model needs ~N GB, the machine has M GB; lower ..." when the estimate
// is above usable_memory_bytes().
void check_model_fits(const nn::ModelConfig& m);
void check_training_fits(const nn::ModelConfig& m, int64_t batch_size);
// `flag` names the option to lower, with its value: "--beam 100000".
void check_generation_fits(const nn::ModelConfig& m, int64_t sequences, int64_t tokens,
                           const std::string& flag);

}  // namespace qkv::train
