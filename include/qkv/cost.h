// What a model costs, from its config alone: the FLOPs of a training step and the bytes of
// training or generating (in double arithmetic, which no size can overflow), and the check that
// those bytes fit what this process may use before anything is allocated: a model too big for
// the machine is one line naming the keys to lower, not a crash in the allocator.
#pragma once

#include <cstdint>
#include <string>

#include "qkv/nn/model_config.h"

namespace qkv::cost {

// Forward and backward FLOPs in nanoGPT's count (6 per weight per token, 12·C per query per key
// of attention, the causal half included), of B sequences of T tokens for a decoder or encoder,
// and of B pairs of Ts source and Tt target tokens for an encoder-decoder.
double training_flops(const nn::ModelConfig& m, int64_t B, int64_t T);
double training_flops(const nn::ModelConfig& m, int64_t B, int64_t Ts, int64_t Tt);

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

}  // namespace qkv::cost
