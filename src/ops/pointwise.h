// Loop helper shared by the pointwise op families (elementwise.cpp, activation.cpp, reduce.cpp).
#pragma once

#include <cstdint>

#include "qkv/autograd.h"

namespace qkv {

// Below this many elements a loop runs on one thread: waking the team costs more than the work.
inline constexpr int64_t kParallelMin = int64_t{1} << 14;

// Calls f(i) for i in [0, n), split over threads with schedule(static) when n is large.
// f must not throw (an exception escaping a parallel region terminates the program).
template <class F>
inline void pointwise(int64_t n, F f) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) f(i);
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
