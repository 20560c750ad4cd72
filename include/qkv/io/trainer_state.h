// trainer_state.json: the trainer's record in a checkpoint (iteration, scale, losses), written
// here and read back through one schema check by everything that opens a checkpoint, so a
// hand-edited or damaged record is one line naming the file and the key, never an exception
// from the JSON library.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "qkv/io/checkpoint.h"
#include "qkv/nn/model_config.h"

namespace qkv::io {

struct TrainerState {
  int64_t iter = 0;
  int64_t micro_batches = 1;        // M of each step
  int64_t processes = 1;            // how many processes shared them
  double best_val_loss = INFINITY;  // INFINITY: no evaluation yet
  nlohmann::json last_eval;         // null, or {"iter", "val_loss", ...}
  nn::ModelKind model_kind = nn::ModelKind::decoder;
  int64_t num_parameters = 0;  // written for readers; not read back
};

// The record as the trainer saves it, with the qkv version that saved it.
nlohmann::json to_json(const TrainerState& state);

// Checks types and ranges, and that iter equals the step in the directory's name
// (checkpoint-<step>), the one manifest.json records, and the optimizer's step count when the
// optimizer was loaded. Throws
// qkv::Error "DIR/trainer_state.json: 'iter' is -5, expected ...".
TrainerState read_trainer_state(const CheckpointData& checkpoint, const std::string& dir);

}  // namespace qkv::io
