// What `qkv train` is asked to do: a new run from a config, a resumed run, or a new run from
// another's weights; and which keys a resumed run may change and still be the run it was.
#pragma once

#include <string>
#include <vector>

namespace qkv::train {

struct TrainOptions {
  std::string config_path;             // a new run (empty with resume)
  std::vector<std::string> overrides;  // --set section.key=value
  std::string resume;                  // run dir or checkpoint dir
  std::string init_from;               // checkpoint whose weights start a new run
  bool allow_data_change = false;      // resume on a training text that changed
};

// Keys that --set may change when resuming: they do not change the model, the data or the
// optimizer's meaning, only how long and how observably the run goes on.
const std::vector<std::string>& resumable_keys();
// Throws qkv::Error for options that exclude each other (a config with --resume, --resume with
// --init-from) and, when resuming, for the first --set of a key not in resumable_keys().
void check_options(const TrainOptions& options);

}  // namespace qkv::train
