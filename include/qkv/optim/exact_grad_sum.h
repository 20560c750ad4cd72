// ExactGradSum: the sum of a step's micro-batch gradients, computed exactly, so that it does not
// depend on how the micro-batches were grouped: how many ran in each process, in what order.
// That is what lets a step give the same bits as 1 process × grad_accum 4, 2 ranks × 2 or
// 4 ranks × 1. (Float addition is not associative: any other grouping changes the last bits.)
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <stop_token>
#include <thread>
#include <unordered_map>
#include <vector>

#include "qkv/optim/cross_process.h"
#include "qkv/tensor.h"

namespace qkv::optim {

// Note: the representation. For each parameter tensor, every micro-batch gradient element g is
// rounded to an integer multiple of 2^-s, where s = 62 - ceil(log2 M) - e and 2^e bounds the
// largest |g| of that tensor over all M micro-batches of the step (in every process; max is
// exact and associative). The M integers then sum in int64 without overflow, exactly, in any
// order, and the sum is rounded once to float.
//   Precision: rounding moves each element of each micro-batch by at most 2^(e - 63 + ceil(log2
// M)), i.e. 2^-61 of 2^e at M = 4, and an element of at least 2^(e - 38 + ceil(log2 M)) keeps all
// its 24 bits. A float32 running sum instead rounds to 2^-24 of the total at every addition.
//   Cost: no copy of any gradient (each micro-batch's grad storage is taken, not copied); two
// passes over the taken grads (the maximum, then the sum) and, across processes, one int64 per
// parameter element to reduce.
// Alternatives: binned sums as in ReproBLAS (Demmel & Nguyen) need no global maximum but hold
// two or three words per element; this needs the maximum first, which costs one tiny reduction.
// Note: overlap. With other processes, the sum of the step's last micro-batch can start while
// its backward still runs, as in PyTorch DDP: the parameters, in reverse order (roughly the order
// the backward completes them), form buckets of about bucket_elements; once the backward has
// finished every parameter of a bucket, a thread of this object reduces it (the maximum of its
// exponents, then the sum of its integers), bucket after bucket, while the backward goes on.
// The bits are those of the reduction after the backward: every sum is exact. A model of one
// bucket is reduced after the backward, as without overlap.
class ExactGradSum {
 public:
  static constexpr int64_t kBucketElements = int64_t{1} << 20;  // 8 MB of int64 sums

  // params: (name, leaf tensor), as from Module::named_parameters().
  explicit ExactGradSum(NamedTensors params, int64_t bucket_elements = kBucketElements);
  ~ExactGradSum();

  const NamedTensors& params() const { return params_; }

  // Takes each parameter's grad (one micro-batch's gradient) into the sum, leaving the parameter
  // without one, so the next backward starts from zero.
  void take_micro_batch();

  // Writes the exact sum of the micro-batches taken, in this process and (with `across`) in the
  // others, into the parameters' grads, and forgets them. micro_batches: M, over all processes.
  // A tensor with a non-finite element in any micro-batch gets NaN grads; a tensor no
  // micro-batch reached gets none.
  void finish(int64_t micro_batches, const CrossProcess* across = nullptr);

  // Overlap (see the note): instead of take_micro_batch after the last micro-batch of this
  // process, run its backward with the returned hook, then call finish(micro_batches, &across).
  LeafDone reduce_during_backward(int64_t micro_batches, const CrossProcess& across);

 private:
  struct Bucket {
    size_t first = 0, end = 0;  // parameters [first, end); their sums are contiguous in fixed_
    size_t waiting = 0;         // of them, those the backward has not finished
  };
  void local_exponent(size_t i, bool threaded);
  void sum_local(size_t i, int bits, bool across, bool threaded);
  void finished_by_backward(size_t i);  // under mutex_
  void reduce_buckets(std::stop_token stop, const CrossProcess& across, int bits);

  NamedTensors params_;
  std::vector<std::vector<Tensor>> taken_;  // [parameter][micro-batch]: grads, as taken
  std::vector<int32_t> exponents_;          // per parameter: e, or a kNo... marker
  std::vector<int64_t> fixed_;              // with other processes: all sums, one buffer
  int64_t total_ = 0;                       // elements over all parameters
  std::vector<const float*> sources_;       // one tensor's taken grads, while it is summed
  std::vector<int64_t> offsets_;            // each parameter's first element in fixed_

  // Overlap: the buckets, each parameter's, and the thread that reduces them during a step.
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;
  std::unordered_map<const TensorImpl*, size_t> index_;  // parameter -> i
  std::vector<bool> finished_;                            // by the backward, this step
  std::mutex mutex_;
  std::condition_variable_any bucket_ready_;
  std::jthread reducer_;
};

}  // namespace qkv::optim
