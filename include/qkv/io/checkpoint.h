// Checkpoint directories: RUN/checkpoint-<step>/ holding model.safetensors, optimizer.safetensors,
// trainer_state.json, config.toml, vocab.json and manifest.json (SHA-256 of every other file).
// Written atomically (temp dir, fsync, rename, fsync parent), then RUN/latest is pointed at it,
// so a crash at any moment leaves the previous checkpoint intact and `latest` complete.
// The format is documented in docs/checkpoint-format.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "qkv/tensor.h"

namespace qkv::io {

struct CheckpointData {
  NamedTensors model;      // named_parameters(), weights only
  NamedTensors optimizer;  // AdamW moments ("m.<name>", "v.<name>")
  int64_t optimizer_step = 0;
  int64_t manifest_step = -1;    // the step manifest.json records (load_checkpoint; -1 if none)
  nlohmann::json trainer_state;  // the trainer's own record: iteration, best loss, metrics...
  std::string config_toml;       // the resolved config
  nlohmann::json vocab;          // data::Vocab::to_json()
  std::string data_fingerprint;  // SHA-256 hex of the training text
};

// Writes RUN/checkpoint-<step>/ and then points RUN/latest at it. An existing checkpoint of the
// same step is never modified in place: it is replaced only by the rename of a complete one.
// Throws qkv::Error naming the path when anything cannot be written (read-only, disk full); the
// previous checkpoints and `latest` are then untouched. Returns the checkpoint's path.
std::string save_checkpoint(const std::string& run_dir, int64_t step, const CheckpointData& data);

// Points RUN/best at checkpoint-<step> (atomic replace).
void mark_best(const std::string& run_dir, int64_t step);

// Deletes all but the newest keep_last checkpoints, never the one `best` or `latest` names.
void prune_checkpoints(const std::string& run_dir, int64_t keep_last);

// Whether RUN holds a checkpoint: a checkpoint-<step>/ directory (complete or not) or a `latest`
// pointer. A run directory without one (a run that stopped before its first save) may be
// started again from scratch: there is nothing in it to continue.
bool holds_checkpoint(const std::string& run_dir);

// A checkpoint directory from a run directory (follows `latest`) or a checkpoint directory.
// Throws qkv::Error "RUN: no checkpoint found (expected checkpoint-<step>/ directories)" etc.
std::string resolve_checkpoint(const std::string& path);

// Reads a checkpoint (a run dir or a checkpoint dir), verifying every file against the manifest
// first: a missing file, a changed byte or a malformed file is a qkv::Error naming the file.
// with_optimizer = false skips optimizer.safetensors (sampling, eval, --init-from).
CheckpointData load_checkpoint(const std::string& path, bool with_optimizer = true);

// The step RUN/<pointer> ("latest" or "best") names, or nothing when the pointer does not exist.
// Throws qkv::Error naming the file when it cannot be read or names no checkpoint-<step>.
std::optional<int64_t> read_pointer(const std::string& run_dir, const std::string& pointer);

// The step recorded in a checkpoint directory's name ("checkpoint-500" -> 500).
int64_t checkpoint_step(const std::string& checkpoint_dir);

}  // namespace qkv::io
