// trainer_state.json: the trainer's record in a checkpoint (iteration, scale, losses), read
// through one schema check by every command that opens a checkpoint (info, eval, sample,
// attention, train --resume and --init-from), so a hand-edited or damaged record is one line
// naming the file and the key, never an exception from the JSON library.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "qkv/io/checkpoint.h"
#include "qkv/nn/model_config.h"

namespace qkv::train {

struct TrainerState {
  int64_t iter = 0;
  int64_t micro_batches = 0;        // M of each step; 0: not recorded (before MPI: grad_accum)
  int64_t processes = 1;            // how many processes shared them
  double best_val_loss = INFINITY;  // INFINITY: no evaluation yet
  nlohmann::json last_eval;         // null, or {"iter", "val_loss", ...}
  nn::ModelKind model_kind = nn::ModelKind::decoder;
};

// Checks types and ranges, and that iter equals the step in the directory's name
// (checkpoint-<step>), the one manifest.json records, and the optimizer's step count when the
// optimizer was loaded. Throws
// qkv::Error "DIR/trainer_state.json: 'iter' is -5, expected ...".
TrainerState read_trainer_state(const io::CheckpointData& checkpoint, const std::string& dir);

}  // namespace qkv::train
