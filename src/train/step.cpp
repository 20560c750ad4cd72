// The step and the evaluation of `qkv train`, at any number of processes.
#include "qkv/train/step.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <vector>

#include "qkv/ops.h"
#include "qkv/optim/schedule.h"

namespace qkv::train {

namespace {

// SplitMix64's finaliser (Steele, Lea & Flood, "Fast Splittable Pseudorandom Number
// Generators", 2014): a bijection whose output bits each depend on every input bit.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Note: PCG32 generators that share a seed and differ only in stream are related (one sequence
// shifted), so the stream is mixed into the seed too, not only passed as the increment.
Rng keyed_rng(uint64_t seed, int64_t iter, int64_t index, uint64_t stream) {
  uint64_t h = mix64(stream + 0x9e3779b97f4a7c15ULL);
  for (uint64_t k : {seed, static_cast<uint64_t>(iter), static_cast<uint64_t>(index)})
    h = mix64(h ^ mix64(k + 0x9e3779b97f4a7c15ULL));
  return Rng(h, stream);
}

// Three values per index (a micro-batch's loss, tokens and FLOPs; an evaluation batch's loss,
// hits and predicted characters), summed in index order at any scale. A process alone adds them
// as they come, in order. Processes fill their own slots of a shared vector instead (one non-zero
// addend per slot, so the reduction is exact) and add the slots in order after it.
class OrderedSums {
 public:
  OrderedSums(const parallel::Distributed& dist, int64_t count) : dist_(dist) {
    if (dist.size() > 1) slots_.assign(3 * size_t(count), 0.0);
  }
  void set(int64_t index, double a, double b, double c) {
    if (slots_.empty()) return add(a, b, c);
    double* slot = slots_.data() + 3 * index;
    slot[0] = a;
    slot[1] = b;
    slot[2] = c;
  }
  std::array<double, 3> total() {
    if (!slots_.empty()) {
      dist_.sum(slots_);
      for (size_t i = 0; i < slots_.size(); i += 3) add(slots_[i], slots_[i + 1], slots_[i + 2]);
    }
    return sums_;
  }

 private:
  void add(double a, double b, double c) {
    sums_[0] += a;
    sums_[1] += b;
    sums_[2] += c;
  }
  const parallel::Distributed& dist_;
  std::vector<double> slots_;
  std::array<double, 3> sums_{};
};

}  // namespace

Rng micro_batch_data_rng(uint64_t seed, int64_t iter, int64_t micro_batch) {
  return keyed_rng(seed, iter, micro_batch, 2);
}

Rng micro_batch_dropout_rng(uint64_t seed, int64_t iter, int64_t micro_batch) {
  return keyed_rng(seed, iter, micro_batch, 1);
}

StepResult optimisation_step(Task& task, optim::Optimizer& optimizer, optim::ExactGradSum& grads,
                             const parallel::Distributed& dist, uint64_t seed, int64_t iter,
                             int64_t grad_accum, float grad_clip, float lr, bool overlap) {
  // This process runs micro-batches [first, first + grad_accum) of the step's M.
  const int64_t m_total = grad_accum * dist.size(), first = grad_accum * dist.rank();
  optimizer.zero_grad();
  OrderedSums sums(dist, m_total);  // loss, tokens, FLOPs of each micro-batch
  for (int64_t micro = first; micro < first + grad_accum; ++micro) {
    Rng data_rng = micro_batch_data_rng(seed, iter, micro);
    Rng dropout_rng = micro_batch_dropout_rng(seed, iter, micro);
    const Task::Prediction p = task.predict(data::Split::train, data_rng, &dropout_rng);
    Tensor l = softmax_cross_entropy(p.logits, p.targets);
    sums.set(micro, l.item(), double(p.tokens), p.flops);
    Tensor scaled = mul_scalar(l, 1.0f / float(m_total));
    if (overlap && dist.reduces_during_backward() && micro + 1 == first + grad_accum) {
      scaled.backward(grads.reduce_during_backward(m_total, dist));
      continue;
    }
    scaled.backward();
    // One micro-batch's gradient is its own exact sum: only several need ExactGradSum.
    if (m_total > 1) grads.take_micro_batch();
  }
  const auto t0 = std::chrono::steady_clock::now();
  if (m_total > 1) grads.finish(m_total, dist.size() > 1 ? &dist : nullptr);
  const double reduce_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const auto [loss, tokens, flops] = sums.total();
  StepResult r{.loss = loss / double(m_total),
               .tokens = int64_t(tokens),
               .flops = flops,
               .reduce_ms = reduce_ms};
  // A non-finite loss leaves the weights untouched, so the caller can stop with them intact.
  if (!std::isfinite(r.loss)) return r;
  // clip_grad_norm then step(lr), with the clip folded into the update's pass over the grads.
  r.grad_norm = optim::grad_norm(grads.params());
  optimizer.step(lr, optim::clip_factor(r.grad_norm, grad_clip));
  return r;
}

std::optional<EvalResult> evaluate_at(Task& task, data::Split split, uint64_t seed, int64_t iter,
                                      int64_t batches, const parallel::Distributed& dist,
                                      const std::atomic<bool>& stop) {
  OrderedSums sums(dist, batches);  // loss, hits, predicted of each batch
  EvalProgress progress(split, batches);
  for (int64_t round = 0; round * dist.size() < batches; ++round) {
    const int64_t i = round * dist.size() + dist.rank();
    if (i < batches) {
      Rng rng = keyed_rng(seed, iter, i, split == data::Split::train ? 3 : 4);
      const Task::BatchEval b = task.evaluate_batch(split, rng);
      sums.set(i, b.loss, double(b.hits), double(b.predicted));
    }
    if (dist.any(stop)) return std::nullopt;
    if (dist.writes()) progress.done(std::min(batches, (round + 1) * dist.size()));
  }
  const auto [loss, hits, predicted] = sums.total();
  return EvalResult{loss / double(batches), predicted > 0 ? hits / predicted : 0.0};
}

}  // namespace qkv::train
