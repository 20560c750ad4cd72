// The op timer behind bench_train --profile. Forward time is charged to the op whose record()
// ends it, which includes the module code that ran since the previous op: good enough to see
// where a step goes, and no op has to be touched to be timed.
#include "op_profile.h"

#include <algorithm>
#include <chrono>
#include <map>

namespace qkv::op_profile {
namespace {

using Clock = std::chrono::steady_clock;

struct State {
  bool on = false;
  Clock::time_point last;
  std::map<std::string, Entry> totals;
};

State& state() {
  static State s;
  return s;
}

std::string key(const char* op, const Shape& out) { return std::string(op) + " " + out.str(); }

}  // namespace

void start() {
  state().on = true;
  state().last = Clock::now();
}

void stop() { state().on = false; }

std::vector<Entry> take() {
  std::vector<Entry> out;
  for (auto& [op, e] : state().totals) out.push_back(e);
  state().totals.clear();
  std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) {
    return a.forward_ms + a.backward_ms > b.forward_ms + b.backward_ms;
  });
  return out;
}

bool enabled() { return state().on; }

void forward_recorded(const char* op, const Shape& out) {
  State& s = state();
  const Clock::time_point now = Clock::now();
  Entry& e = s.totals[key(op, out)];
  e.op = key(op, out);
  e.forward_ms += std::chrono::duration<double, std::milli>(now - s.last).count();
  e.calls++;
  s.last = now;
}

void backward_ran(const char* op, const Shape& out, Clock::time_point start) {
  Entry& e = state().totals[key(op, out)];
  e.op = key(op, out);
  e.backward_ms += std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

}  // namespace qkv::op_profile
