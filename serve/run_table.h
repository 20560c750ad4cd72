// What the page's run list shows of each run: its model, how far it trained, its best
// validation loss, its checkpoints, and whether a qkv train holds its lock now. metrics.jsonl
// is followed incrementally (MetricsTail), so listing often does not reread long logs.
#pragma once

#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "metrics_tail.h"
#include "runs_dir.h"

namespace qkv::serve {

class RunTable {
 public:
  explicit RunTable(const RunsDir& runs) : runs_(runs) {}

  // {"runs": [summary, ...]}, by name.
  nlohmann::json list();
  // {"name", "training", "pid", "kind", "n_layer", "n_head", "n_embd", "block_size",
  //  "max_iters", "params", "step", "best_val_loss", "checkpoints": [{"name", "step"}],
  //  "latest", "best"}; what cannot be read is left out, and a config.toml that does not parse
  //  gives "error" instead of the model's keys.
  nlohmann::json summary(const Run& run);

 private:
  struct Followed {
    MetricsTail tail;
    MetricsSummary summary;
  };
  MetricsSummary metrics_summary(const Run& run);

  const RunsDir& runs_;
  std::mutex mutex_;
  std::map<std::string, Followed> followed_;  // by run name
};

}  // namespace qkv::serve
