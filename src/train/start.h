// Where a run starts, read before anything is written: its config and directory and, when it
// continues from a checkpoint, the model loaded from it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "qkv/io/checkpoint.h"
#include "qkv/io/config.h"
#include "qkv/io/trainer_state.h"
#include "qkv/load.h"
#include "qkv/parallel/distributed.h"
#include "qkv/train/options.h"

namespace qkv::train {

struct Start {
  io::Config config;
  std::string run_dir;
  std::string checkpoint_dir;                 // resumed from, or the weights of --init-from
  std::optional<io::CheckpointData> resumed;  // the checkpoint a resumed run continues
  std::optional<load::LoadedModel> loaded;    // its model, or the weights of --init-from
};

// Every process calls it: rank 0 alone reads the run directory (the others may not see it)
// and sends the checkpoint to all. Throws qkv::Error for bad options or a bad checkpoint.
Start resolve_start(const TrainOptions& options, const parallel::Distributed& group);

// A new run may use a directory that holds no checkpoint: a new one, or one whose run stopped
// before its first save, where starting again loses nothing. Nor may it be a checkpoint or lie
// inside one or inside another run's directory, whose checkpoints it would then rewrite (a
// checkpoint's config.toml) and whose pruning and listing would take it for theirs.
// Unreadable paths pass here: creating the directory then reports them.
void check_no_checkpoint(const std::string& dir);

// The grad_accum that keeps a resumed run's steps at the checkpoint's M micro-batches on this
// many processes (saved_grad_accum: the checkpoint config's, logged when it changes).
int64_t grad_accum_at_scale(const io::TrainerState& state, int64_t saved_grad_accum,
                            const std::string& dir, const parallel::Distributed& group);

}  // namespace qkv::train
