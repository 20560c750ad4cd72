// What a run says as it goes: its start-up lines, and each step's line in metrics.jsonl and,
// every train.log_interval steps, in the log.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qkv/environment.h"
#include "qkv/io/config.h"
#include "qkv/runtime.h"
#include "qkv/train/step.h"

namespace qkv::train {

class Progress {
 public:
  // peak_gflops: GEMMs at the run's precision, measured at start-up.
  Progress(const io::Config& config, const Environment& env, int processes,
           PrecisionChoice precision, double peak_gflops);

  int64_t global_batch() const;  // sequences per step, over all processes
  void log_start(int64_t parameters, int64_t vocab_size, const std::string& run_dir) const;
  // The line of step iter, which took ms and ran at lr.
  nlohmann::json step(int64_t iter, float lr, const StepResult& result, double ms);

 private:
  io::Config config_;
  Environment env_;
  int processes_;
  PrecisionChoice precision_;
  double peak_gflops_;
  std::vector<double> recent_ms_, recent_gflops_;
};

}  // namespace qkv::train
