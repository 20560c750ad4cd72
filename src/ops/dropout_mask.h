// Internal: dropout masks from a counter-based hash. Element e of the mask with seed s is
// dropped when the top 24 bits of splitmix64(s + e·γ) fall below p·2^24, so each element can
// be computed on its own: masks are drawn in parallel, in vectorised loops, are the same for
// any thread count, and the backward recomputes them instead of keeping them. The seed comes
// from the caller's Rng, so a saved Rng state replays the same masks.
#pragma once

#include <cstdint>

#include "qkv/rng.h"

namespace qkv {

struct DropoutMask {
  uint64_t seed = 0;
  uint32_t threshold = 0;  // drop when the element's 24 bits are below this
  float scale = 1.0f;      // 1 / (1 - p) for the kept elements

  DropoutMask() = default;
  DropoutMask(uint64_t seed, float p)
      : seed(seed),
        threshold(static_cast<uint32_t>(static_cast<double>(p) * 16777216.0)),
        scale(1.0f / (1.0f - p)) {}

  // Two draws from rng: one mask's seed.
  static uint64_t draw_seed(Rng& rng) {
    const uint64_t hi = rng.next_u32();
    return (hi << 32) | rng.next_u32();
  }

  // 0 (dropped) or scale (kept) for element e. splitmix64's finaliser (Steele, Lea & Flood,
  // "Fast splittable pseudorandom number generators", 2014).
  float operator()(uint64_t e) const {
    uint64_t z = seed + e * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return static_cast<uint32_t>(z >> 40) < threshold ? 0.0f : scale;
  }
};

}  // namespace qkv
