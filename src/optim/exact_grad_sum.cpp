// The exact micro-batch gradient sum: per-tensor int64 fixed point with a shared power-of-two
// scale (see the note in the header); the overlap with the backward is in grad_sum_overlap.cpp.
#include "qkv/optim/exact_grad_sum.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "optim/fixed_point.h"

namespace qkv::optim {

using namespace fixed_point;

ExactGradSum::ExactGradSum(NamedTensors params, int64_t bucket_elements)
    : params_(std::move(params)),
      taken_(params_.size()),
      exponents_(params_.size()),
      bucket_of_(params_.size()) {
  for (size_t i = 0; i < params_.size(); ++i) {
    offsets_.push_back(total_);
    total_ += params_[i].second.numel();
    index_[params_[i].second.impl()] = i;
  }
  offsets_.push_back(total_);
  // From the last parameter down: each bucket is a contiguous range, filled to bucket_elements.
  for (size_t end = params_.size(); end > 0;) {
    Bucket b{.first = end, .end = end};
    while (b.first > 0 && offsets_[b.end] - offsets_[b.first] < bucket_elements) --b.first;
    for (size_t i = b.first; i < b.end; ++i) bucket_of_[i] = buckets_.size();
    buckets_.push_back(b);
    end = b.first;
  }
}

ExactGradSum::~ExactGradSum() = default;  // the reducer, if a step was cut short, stops

void ExactGradSum::take_micro_batch() {
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i].second;
    Tensor g = p.grad();
    if (!g.defined()) continue;
    taken_[i].push_back(std::move(g));
    p.zero_grad();
  }
}

void ExactGradSum::local_exponent(size_t i, bool threaded) {
  int32_t e = kNoGrad;
  for (const Tensor& g : taken_[i]) e = std::max(e, exponent_bound(g.data(), g.numel(), threaded));
  exponents_[i] = e;
}

// Tensor i's sum over this process's micro-batches: into its grad when it runs alone, else
// into fixed_ for the reduction.
void ExactGradSum::sum_local(size_t i, int bits, bool across, bool threaded) {
  const int32_t e = exponents_[i];
  const Tensor& p = params_[i].second;
  const int64_t n = p.numel();
  if (e != kNoGrad) {
    // The result goes into a grad storage this process already holds, or a fresh one.
    p.set_grad(taken_[i].empty() ? Tensor::empty(p.shape()) : taken_[i].front());
  }
  int64_t* fixed = across ? fixed_.data() + offsets_[i] : nullptr;
  if (e == kNoGrad || e == kAllZero || e == kNonFinite || taken_[i].empty()) {
    if (e == kAllZero || e == kNonFinite) {
      const float v = e == kAllZero ? 0.0f : std::numeric_limits<float>::quiet_NaN();
      std::fill(p.grad_data(), p.grad_data() + n, v);
    }
    if (across) std::fill(fixed, fixed + n, 0);
    return;
  }
  sources_.clear();  // one thread sums at a time: the reducer during a step, else the caller
  for (const Tensor& g : taken_[i]) sources_.push_back(g.data());
  const double scale = std::ldexp(1.0, 62 - bits - e), unscale = std::ldexp(1.0, e + bits - 62);
  float* result = p.grad_data();  // may be sources_[0]: each block is read, then written
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (threaded && n > kParallel)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t begin = b * kBlock, len = std::min(kBlock, n - begin);
    int64_t acc[kBlock];
    sum_block(acc, sources_, begin, len, scale);
    if (across)
      std::copy(acc, acc + len, fixed + begin);
    else
      for (int64_t j = 0; j < len; ++j) result[begin + j] = from_fixed(acc[j], unscale);
  }
}

void ExactGradSum::finish(int64_t micro_batches, const CrossProcess* across) {
  const int bits = headroom_bits(micro_batches);
  if (reducer_.joinable()) {
    {
      std::lock_guard lock(mutex_);  // parameters the backward never reached
      for (size_t i = 0; i < params_.size(); ++i) finished_by_backward(i);
    }
    reducer_.join();
  } else {
    for (size_t i = 0; i < params_.size(); ++i) local_exponent(i, true);
    if (across) {
      across->max(exponents_);
      fixed_.resize(static_cast<size_t>(total_));  // once: a process alone never needs it
    }
    for (size_t i = 0; i < params_.size(); ++i) sum_local(i, bits, across != nullptr, true);
    if (across) across->sum(fixed_);
  }
  if (across) {
    for (size_t i = 0; i < params_.size(); ++i) {
      const int32_t e = exponents_[i];
      if (e == kNoGrad || e == kAllZero || e == kNonFinite) continue;
      const Tensor& p = params_[i].second;
      const int64_t n = p.numel();
      const double unscale = std::ldexp(1.0, e + bits - 62);
      const int64_t* fixed = fixed_.data() + offsets_[i];
      float* result = p.grad_data();
#pragma omp parallel for schedule(static) if (n > kParallel)
      for (int64_t j = 0; j < n; ++j) result[j] = from_fixed(fixed[j], unscale);
    }
  }
  for (auto& t : taken_) t.clear();
}

}  // namespace qkv::optim
