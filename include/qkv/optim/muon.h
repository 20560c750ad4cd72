// Muon (Jordan et al., 2024): momentum, then its Newton–Schulz orthogonalisation as the update,
// for the hidden weight matrices of a transformer. bench/ref_optim.py's Muon, step for step.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "qkv/precision.h"
#include "qkv/tensor.h"

namespace qkv::optim {

struct MuonConfig {
  // Doubles, as the reference's Python floats: 1 - momentum is then the same float on both sides.
  double lr = 0.02;
  double momentum = 0.95;
  Precision precision = Precision::fp32;  // what Newton–Schulz computes in
};

// A weight W [rows, cols] ([out, in], as nn::Linear stores it) that Muon updates, as `parts`
// blocks of rows/parts rows, each orthogonalised on its own: a fused projection's q, k and v
// (3 parts) are three matrices, not one.
struct MuonParam {
  std::string name;
  Tensor param;
  int64_t parts = 1;
};

class Muon {
 public:
  // Momentum buffers start at zero. Throws qkv::Error for a parameter that is not 2-D or whose
  // rows do not split into its parts.
  Muon(std::vector<MuonParam> params, MuonConfig config);

  void zero_grad();

  // One update of every parameter that has a grad G (times grad_scale: the clip's factor), at
  // learning rate lr (optim.muon_lr times the schedule's factor):
  //   M = μ·M + (1-μ)·G;  U = (1-μ)·G + μ·M  (Nesterov)
  //   W -= lr · sqrt(max(1, r/c)) · newton_schulz(U_part)  for each [r, c] part of U.
  // No weight decay. The parts run in parallel, each on one thread, so the bits do not depend
  // on the thread count.
  void step(double lr, float grad_scale);

  // "momentum.<name>" for every parameter: its part of optimizer.safetensors.
  NamedTensors state() const;
  // Restores the buffers by name. Throws qkv::Error listing every missing, unexpected or
  // mis-shaped entry.
  void load_state(const NamedTensors& state);

 private:
  struct Slot {
    MuonParam p;
    Tensor momentum;
  };
  std::vector<Slot> slots_;
  MuonConfig config_;
};

}  // namespace qkv::optim
