// A checkpoint read by rank 0 alone and sent to every process: a run directory may be on
// storage that only rank 0 sees (its local disk), as long as the training text is on all.
#pragma once

#include <optional>
#include <string>

#include "qkv/io/checkpoint.h"
#include "qkv/parallel/distributed.h"

namespace qkv::parallel {

struct SharedCheckpoint {
  std::string dir;
  io::CheckpointData data;
};

// Rank 0's checkpoint (`mine` there, nullopt elsewhere) on every process.
SharedCheckpoint broadcast_checkpoint(const Distributed& dist,
                                      std::optional<SharedCheckpoint> mine);

// Every process calls it; on rank 0, `read` resolves and loads the checkpoint (and throws what
// it finds wrong). Returns (the checkpoint directory, its data) on every process.
template <class Read>
SharedCheckpoint read_on_rank0(const Distributed& dist, Read read) {
  return broadcast_checkpoint(dist, dist.rank() == 0 ? std::optional(read()) : std::nullopt);
}

}  // namespace qkv::parallel
