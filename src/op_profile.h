// Internal to the library and its benchmarks: an opt-in timer of the autograd ops, for
// bench_train --profile. Off by default, when it costs one branch per recorded op.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "qkv/shape.h"

namespace qkv::op_profile {

struct Entry {
  std::string op;          // the op's name and its output's shape, e.g. "linear [12, 64, 384]"
  double forward_ms = 0;   // wall time up to the op's record(), since the previous one
  double backward_ms = 0;  // wall time of its backward closures
  int64_t calls = 0;       // forward calls
};

// Starts (or stops) timing; start() also resets the forward clock, so the first op recorded
// is charged only from here.
void start();
void stop();
// Totals since the last take(), largest first; resets them.
std::vector<Entry> take();

// Hooks for the engine (autograd.cpp).
bool enabled();
void forward_recorded(const char* op, const Shape& out);
void backward_ran(const char* op, const Shape& out, std::chrono::steady_clock::time_point start);

}  // namespace qkv::op_profile
