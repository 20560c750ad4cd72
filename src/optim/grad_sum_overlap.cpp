// ExactGradSum's overlap with the backward (see the note in the header): buckets of parameters
// reduced across processes by a thread of their own while the backward still runs.
#include <pthread.h>
#include <sched.h>

#include <chrono>

#include "optim/fixed_point.h"
#include "qkv/optim/exact_grad_sum.h"

namespace qkv::optim {

using namespace fixed_point;

namespace {

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

}  // namespace qkv::optim
