// Rng: a small seeded generator (PCG32) whose whole state is two integers, so a checkpoint
// can save and restore it exactly. Every random number in qkv comes from an explicit Rng.
#pragma once

#include <cstdint>

namespace qkv {

class Rng {
 public:
  explicit Rng(uint64_t seed, uint64_t stream = 0);

  uint32_t next_u32();
  float uniform();                  // [0, 1), 24 random bits
  float normal();                   // standard normal (Box-Muller; uses two uniforms)
  uint64_t below(uint64_t n);       // uniform integer in [0, n), unbiased; n > 0

  struct State {
    uint64_t state, inc;
  };
  State state() const { return {state_, inc_}; }
  void set_state(State s) { state_ = s.state, inc_ = s.inc; }

 private:
  uint64_t state_ = 0, inc_ = 0;
};

}  // namespace qkv
