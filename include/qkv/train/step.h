// One step of training and one evaluation, the same at any scale: a step's M micro-batches
// and an evaluation's batches each draw from streams keyed by (seed, iter, index), are dealt
// over the processes of a Distributed, and are combined exactly, in index order.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>

#include "qkv/optim/exact_grad_sum.h"
#include "qkv/optim/optimizer.h"
#include "qkv/parallel/distributed.h"
#include "qkv/rng.h"
#include "qkv/train/task.h"

namespace qkv::train {

// The streams micro-batch m of step iter draws from: its data (windows, masked positions) and
// its dropout masks, keyed by (train.seed, iter, m). A step's data therefore does not depend on
// how many processes share its micro-batches, nor on any state but iter.
Rng micro_batch_data_rng(uint64_t seed, int64_t iter, int64_t micro_batch);
Rng micro_batch_dropout_rng(uint64_t seed, int64_t iter, int64_t micro_batch);

// One optimisation step, the math of every `qkv train` iteration. A step has M = processes ×
// grad_accum micro-batches; this process runs its grad_accum of them (micro-batch m from the
// streams of (seed, iter, m), each loss scaled by 1/M), after dropping the grads. Their
// gradients are summed exactly over all processes (ExactGradSum: the bits do not depend on
// how the micro-batches are grouped), the global grad norm is clipped to grad_clip, and every
// process takes the same optimizer update at lr. With overlap, the sum across processes runs in
// buckets during the backward of this process's last micro-batch (ExactGradSum's note), with
// the same bits. Shared with bench/bench_train.
struct StepResult {
  double loss = 0;      // mean over the step's M micro-batches (all processes')
  float grad_norm = 0;  // before clipping
  int64_t tokens = 0;   // positions computed, and their forward and backward FLOPs (Task)
  double flops = 0;
  double reduce_ms = 0;  // spent summing gradients after the backward: what overlap did not hide
};
StepResult optimisation_step(Task& task, optim::Optimizer& optimizer, optim::ExactGradSum& grads,
                             const parallel::Distributed& dist, uint64_t seed, int64_t iter,
                             int64_t grad_accum, float grad_clip, float lr, bool overlap = true);

// Mean loss and accuracy over `batches` batches of `split` at iteration iter, batch i from a
// stream keyed by (seed, iter, i). The batches are dealt round-robin over the processes and
// combined in batch order, so the result is the same at any scale. Nothing when `stop` was set
// on any process: checked after each round of batches, the same rounds on every process.
std::optional<EvalResult> evaluate_at(Task& task, data::Split split, uint64_t seed, int64_t iter,
                                      int64_t batches, const parallel::Distributed& dist,
                                      const std::atomic<bool>& stop);

}  // namespace qkv::train
