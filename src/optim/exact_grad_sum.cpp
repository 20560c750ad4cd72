// The exact micro-batch gradient sum: per-tensor int64 fixed point with a shared power-of-two
// scale (see the note in the header).
#include "qkv/optim/exact_grad_sum.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstring>
#include <limits>

#include <pthread.h>
#include <sched.h>

namespace qkv::optim {

namespace {

constexpr int64_t kParallel = 1 << 14;  // elements below which threads cost more than they save
constexpr int64_t kBlock = 512;

// Exponent markers that order below (no grad, zeros) or above (NaN, inf) every real one, so
// the maximum over micro-batches and processes says what the whole step held.
constexpr int32_t kNoGrad = INT32_MIN;
constexpr int32_t kAllZero = INT32_MIN + 1;
constexpr int32_t kNonFinite = INT32_MAX;

// e with max |g| < 2^e, from the largest magnitude's bits: as integers, |float| bit patterns
// order as the values do, with inf and NaN above every finite one, so the maximum is exact and
// sees a NaN (a float max would skip it).
int32_t exponent_bound(const float* g, int64_t n, bool threaded) {
  uint32_t top = 0;
#pragma omp parallel for schedule(static) reduction(max : top) if (threaded && n > kParallel)
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, g + i, sizeof bits);
    top = std::max(top, bits & 0x7fffffffu);
  }
  if (top == 0) return kAllZero;
  if (top >= 0x7f800000u) return kNonFinite;
  // Normal: |g| < 2^(biased - 126). Subnormals (biased 0) are below 2^-126 as well.
  return std::max<int32_t>(static_cast<int32_t>(top >> 23), 1) - 126;
}

// acc[j] = Σ_m rint(g_m[begin + j]·2^s) over the micro-batches, for one block: summed in the
// block's cache lines, so each grad is read once and each sum written once. g·2^s is exact in
// double (24 significant bits, a power-of-two factor far from double's range limits), and
// rint's rounding (to nearest, ties to even) is the same on every machine.
void sum_block(int64_t* acc, const std::vector<const float*>& grads, int64_t begin, int64_t len,
               double scale) {
  std::fill(acc, acc + len, 0);
  for (const float* g : grads)
    for (int64_t j = 0; j < len; ++j)
      acc[j] += static_cast<int64_t>(std::nearbyint(double(g[begin + j]) * scale));
}

// float(q) rounds the exact integer once; the power-of-two factor is then exact (in double), and
// the last conversion rounds only a result below float's normal range.
float from_fixed(int64_t q, double unscale) {
  return static_cast<float>(double(static_cast<float>(q)) * unscale);
}

// Headroom for M addends: each |rint(g·2^s)| <= 2^(62 - bits), so M of them stay below 2^62.
int headroom_bits(int64_t micro_batches) {
  return std::bit_width(static_cast<uint64_t>(micro_batches - 1));
}

class Completed : public CrossProcess::Started {
 public:
  bool done() override { return true; }
};

// Waits for a started reduction: polling drives the communication library's progress (Open MPI
// moves data only inside its calls), and the sleeps leave the cores to the backward.
bool wait(CrossProcess::Started& started, const std::stop_token& stop) {
  while (!started.done()) {
    if (stop.stop_requested()) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
  return true;
}

// A thread that runs as soon as it wakes, before the backward's threads. Under a real-time
// policy (`chrt -f`, as benchmarks run) a thread never takes a core from one of the same
// priority, and the backward's never sleep: the new thread gets one level more, inherited from
// this one's for the moment of its creation. Under the normal policy it needs nothing: the
// scheduler favours threads that sleep most of the time.
template <class F>
std::jthread start_above_compute(F&& f) {
  int policy = 0;
  sched_param param{};
  const bool realtime = pthread_getschedparam(pthread_self(), &policy, &param) == 0 &&
                        (policy == SCHED_FIFO || policy == SCHED_RR) &&
                        param.sched_priority < sched_get_priority_max(policy);
  if (realtime) {
    sched_param above = param;
    ++above.sched_priority;
    pthread_setschedparam(pthread_self(), policy, &above);
  }
  std::jthread thread(std::forward<F>(f));
  if (realtime) pthread_setschedparam(pthread_self(), policy, &param);
  return thread;
}

}  // namespace

std::unique_ptr<CrossProcess::Started> CrossProcess::start_max(std::span<int32_t> values) const {
  max(values);
  return std::make_unique<Completed>();
}

std::unique_ptr<CrossProcess::Started> CrossProcess::start_sum(std::span<int64_t> values) const {
  sum(values);
  return std::make_unique<Completed>();
}

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

LeafDone ExactGradSum::reduce_during_backward(int64_t micro_batches, const CrossProcess& across) {
  fixed_.resize(static_cast<size_t>(total_));
  finished_.assign(params_.size(), false);
  for (Bucket& b : buckets_) b.waiting = b.end - b.first;
  // One bucket is complete only when the backward is: the reduction after it costs less.
  if (buckets_.size() > 1) {
    const int bits = headroom_bits(micro_batches);
    reducer_ = start_above_compute(
        [this, &across, bits](std::stop_token stop) { reduce_buckets(stop, across, bits); });
  }
  return [this](const Tensor& leaf) {
    const auto it = index_.find(leaf.impl());
    if (it == index_.end()) return;
    const size_t i = it->second;
    if (Tensor g = leaf.grad(); g.defined()) {
      taken_[i].push_back(std::move(g));
      leaf.zero_grad();
    }
    std::lock_guard lock(mutex_);
    finished_by_backward(i);
  };
}

void ExactGradSum::finished_by_backward(size_t i) {
  if (finished_[i]) return;
  finished_[i] = true;
  if (--buckets_[bucket_of_[i]].waiting == 0) bucket_ready_.notify_one();
}

// The reducer thread: bucket after bucket, in the same order on every process. It computes
// without OpenMP, whose threads belong to the backward.
void ExactGradSum::reduce_buckets(std::stop_token stop, const CrossProcess& across, int bits) {
  std::vector<std::unique_ptr<CrossProcess::Started>> sums;
  for (const Bucket& b : buckets_) {
    {
      std::unique_lock lock(mutex_);
      if (!bucket_ready_.wait(lock, stop, [&] { return b.waiting == 0; })) return;
    }
    for (size_t i = b.first; i < b.end; ++i) local_exponent(i, false);
    const auto max = across.start_max(std::span(exponents_).subspan(b.first, b.end - b.first));
    if (!wait(*max, stop)) return;
    for (size_t i = b.first; i < b.end; ++i) sum_local(i, bits, true, false);
    sums.push_back(across.start_sum(std::span(fixed_).subspan(
        size_t(offsets_[b.first]), size_t(offsets_[b.end] - offsets_[b.first]))));
  }
  for (const auto& s : sums)
    if (!wait(*s, stop)) return;
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
