// The run configuration: a TOML file with [data], [model], [optim], [schedule] and [train]
// tables (nanoGPT's key names), every key validated, and `--set section.key=value` overrides.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "qkv/nn/model_config.h"
#include "qkv/optim/optimizer.h"
#include "qkv/optim/schedule.h"
#include "qkv/runtime.h"

namespace qkv::io {

struct DataConfig {
  std::vector<std::string> path;  // text files (decoder, encoder) or one TSV (encoder_decoder)
  double val_fraction = 0.1;
  std::string mask_char = "_";    // encoder: the character `qkv sample --fill` treats as a mask
  std::string cache_dir;          // where raw text is prepared; empty: the XDG cache directory
  std::string jsonl_field = "text";  // the text field of .jsonl records
};

struct OptimSection {
  double lr = 1e-3, min_lr = 1e-4, beta1 = 0.9, beta2 = 0.99, eps = 1e-8, weight_decay = 0.1;
  double grad_clip = 1.0;  // 0 turns clipping off
  bool decay_all = false;  // false: nanoGPT's groups (only rank >= 2 tensors decay)
  optim::OptimizerKind kind = optim::OptimizerKind::adamw;
  double muon_lr = 0.02, muon_momentum = 0.95;
};

struct ScheduleSection {
  optim::Decay decay = optim::Decay::cosine;
  int64_t warmup_iters = 100, lr_decay_iters = 2000;
  double decay_fraction = 0.2;  // wsd
};

struct TrainSection {
  int64_t batch_size = 12, max_iters = 2000, grad_accum = 1;
  int64_t eval_interval = 250, eval_iters = 20, log_interval = 10;
  int64_t seed = 1337, threads = 0;  // threads 0: all cores
  std::string out_dir = "runs/default";
  int64_t checkpoint_interval = 500, keep_last = 3;
  PrecisionSetting precision = PrecisionSetting::automatic;  // what GEMMs compute in
  bool overlap = true;     // processes reduce gradients during the backward, not after it
  double bucket_mb = 8.0;  // the int64 sums each such reduction carries
};

struct Config {
  DataConfig data;
  nn::ModelConfig model;  // vocab_size and seed are not keys: see nn::ModelConfig
  OptimSection optim;
  ScheduleSection schedule;
  TrainSection train;
};

// Reads a config file, then applies overrides ("section.key=value", in order). Every key is
// checked: unknown keys (with a "did you mean"), wrong types, out-of-range values and
// inconsistent combinations throw qkv::Error "<file>:<line>: ..." or "--set <arg>: ...".
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});
// The same for a config given as TOML text; `source` names it in errors.
Config parse_config(const std::string& toml_text, const std::string& source,
                    const std::vector<std::string>& overrides = {});

// The fully resolved config as TOML (every key, defaults included); parse_config reads it back
// to an identical Config.
std::string to_toml(const Config& config);

// One line per key: "section.key  type  default  meaning", for docs/config.md and --help.
struct KeyDoc {
  std::string key, type, default_value, meaning;
};
std::vector<KeyDoc> config_keys();

}  // namespace qkv::io
