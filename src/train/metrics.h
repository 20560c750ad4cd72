// metrics.jsonl: one JSON object per line, appended as training goes. Floats are written with 17
// significant digits, so a float loss reads back bit for bit.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace qkv::train {

class MetricsLog {
 public:
  // Opens RUN/metrics.jsonl for appending, after dropping what the run will write again (a new
  // run: from_iter = 0, everything): training lines with iter >= from_iter, and eval lines with
  // iter > from_iter (>= unless evaluated_at_from: the checkpoint resumed from holds the
  // evaluation of from_iter). The shorter log replaces the old one whole (io::replace_file), so
  // a full disk leaves the old log as it was. Throws qkv::Error naming the file.
  MetricsLog(const std::string& path, int64_t from_iter, bool evaluated_at_from);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  // Appends one line, or throws qkv::Error naming the file and leaves the log as it was (a line
  // the disk could take only part of is cut off again).
  // Adds "time", when it was written (seconds since the Unix epoch): wall-time charts.
  void append(nlohmann::json line);

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace qkv::train
