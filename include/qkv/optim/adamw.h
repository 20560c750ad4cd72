// AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", 2019) with bias
// correction, in PyTorch's order of operations so one step matches torch.optim.AdamW.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "qkv/tensor.h"

namespace qkv::optim {

struct AdamWConfig {
  float beta1 = 0.9f;
  float beta2 = 0.99f;
  float eps = 1e-8f;
  float weight_decay = 0.1f;
  // nanoGPT's groups: only tensors of rank >= 2 (matmul weights, embeddings) decay; biases and
  // LayerNorm weights do not. True decays every parameter.
  bool decay_all = false;
};

class AdamW {
 public:
  // params: (name, leaf tensor) as from Module::named_parameters(); moments start at zero.
  AdamW(NamedTensors params, AdamWConfig config);

  void zero_grad();
  // One update of every parameter that has a grad, at learning rate lr, with every grad
  // multiplied by grad_scale first: clip_grad_norm's factor (see clip_factor in schedule.h)
  // applied inside the update instead of in a pass of its own. step(lr, clip_factor(norm, max))
  // after grad_norm equals clip_grad_norm then step(lr).
  void step(float lr, float grad_scale = 1.0f);
  int64_t step_count() const { return step_; }

  // "m.<name>" and "v.<name>" for every parameter: what optimizer.safetensors holds, with the
  // step count stored beside them.
  NamedTensors state() const;
  // Restores moments by name and the step count. Throws qkv::Error listing every missing,
  // unexpected or mis-shaped entry.
  void load_state(const NamedTensors& state, int64_t step_count);

 private:
  struct Slot {
    std::string name;
    Tensor param, m, v;
    bool decay;
  };
  std::vector<Slot> slots_;
  AdamWConfig config_;
  int64_t step_ = 0;
};

}  // namespace qkv::optim
