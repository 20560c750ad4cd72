// Loop helpers shared by the op files: a loop or a team of threads that stays on the calling
// thread, without entering OpenMP, when the work is small.
#pragma once

#include <omp.h>

#include <cstdint>

#include "qkv/autograd.h"

namespace qkv {

// Below this many elements a loop runs on one thread: waking the team costs more than the work.
inline constexpr int64_t kParallelMin = int64_t{1} << 14;

// Calls f(i) for i in [0, n): split over the threads (schedule(static)) when `split`, else on
// this thread without entering OpenMP at all.
// Note: a region whose if() clause is false still enters libgomp, which meets the idle threads
// of the last team there; on a busy machine that costs more than a decoding step's rows.
// f must not throw (an exception escaping a parallel region terminates the program).
template <class F>
inline void for_index(int64_t n, bool split, F f) {
  if (!split) {
    for (int64_t i = 0; i < n; ++i) f(i);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) f(i);
}

// Calls f(t, parts) on each of `parts` threads, or f(0, 1) on this one when parts is 1 (see
// for_index's note).
template <class F>
inline void on_parts(int parts, F f) {
  if (parts <= 1) {
    f(0, 1);
    return;
  }
#pragma omp parallel num_threads(parts)
  f(omp_get_thread_num(), parts);
}

// Calls f(i) for i in [0, n), split over threads when n is large.
template <class F>
inline void pointwise(int64_t n, F f) {
  for_index(n, n >= kParallelMin, f);
}

// A backward kernel's store: dx[i] = g(i) into a fresh grad, else dx[i] += g(i).
template <class G>
inline void accumulate(GradOut dx, int64_t n, G g) {
  float* d = dx.data;
  if (dx.overwrite)
    pointwise(n, [=](int64_t i) { d[i] = g(i); });
  else
    pointwise(n, [=](int64_t i) { d[i] += g(i); });
}

}  // namespace qkv
