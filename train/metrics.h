// metrics.jsonl: one JSON object per line, appended and flushed as training goes. Floats are
// written with 17 significant digits, so a float loss reads back bit for bit.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

namespace qkv::train {

class MetricsLog {
 public:
  // Opens RUN/metrics.jsonl for appending. resume_iter >= 0 first drops what a resumed run will
  // write again: training lines with iter >= resume_iter, and eval lines with iter > resume_iter
  // (>= unless evaluated_at_resume: the checkpoint holds the evaluation of resume_iter).
  MetricsLog(const std::string& path, int64_t resume_iter = -1, bool evaluated_at_resume = false);
  void append(const nlohmann::json& line);

 private:
  std::string path_;
  std::ofstream out_;
};

}  // namespace qkv::train
