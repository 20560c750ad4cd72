// The optimizer of a run (optim.kind): AdamW for every parameter, or Muon for the hidden
// matrices and AdamW for the rest, as bench/ref_optim.py's make_optimizers splits them.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "qkv/enum_names.h"
#include "qkv/optim/adamw.h"
#include "qkv/optim/muon.h"
#include "qkv/tensor.h"

namespace qkv::optim {

enum class OptimizerKind { adamw, muon };
// The names of optim.kind (see qkv/enum_names.h).
constexpr EnumNames<2> enum_names(OptimizerKind) { return {"adamw", "muon"}; }

struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::adamw;
  float lr = 1e-3f;  // optim.lr: AdamW's peak; Muon's lr follows the schedule as a share of it
  AdamWConfig adamw;
  MuonConfig muon;  // muon only
};

// What Muon takes under optim.kind = "muon": every 2-D parameter inside a transformer block (a
// name with a "blocks" component: attention's and the MLP's matrices, in every stack), with
// the fused projections split as the attention splits them: attn.qkv.weight into q, k and v
// (3 parts), cross_attn.kv.weight into k and v (2 parts). Embeddings, lm_head, norms and biases
// are not hidden matrices and stay with AdamW.
std::vector<MuonParam> muon_params(const NamedTensors& params);

class Optimizer {
 public:
  // params: (name, leaf tensor) as from Module::named_parameters(); every state starts at zero.
  Optimizer(const NamedTensors& params, const OptimizerConfig& config);

  void zero_grad();
  // One update of every parameter that has a grad, each grad times grad_scale (the clip's
  // factor, see AdamW::step): AdamW's at lr, the schedule's value; Muon's at
  // muon.lr · lr / config.lr, the same factor of its own peak.
  void step(float lr, float grad_scale = 1.0f);
  int64_t step_count() const { return adamw_.step_count(); }

  // AdamW's "m.<name>" and "v.<name>", then Muon's "momentum.<name>": optimizer.safetensors.
  NamedTensors state() const;
  // Restores every state by name and the step count. A state of the other optim.kind is one
  // error saying so; otherwise throws qkv::Error listing every missing, unexpected or
  // mis-shaped entry.
  void load_state(const NamedTensors& state, int64_t step_count);

 private:
  OptimizerConfig config_;
  AdamW adamw_;
  std::optional<Muon> muon_;
};

}  // namespace qkv::optim
