#include "run_table.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>

#include "qkv/cost.h"
#include "qkv/data/vocab.h"
#include "qkv/error.h"
#include "qkv/io/checkpoint.h"
#include "qkv/io/config.h"
#include "qkv/io/regular_file.h"
#include "qkv/io/run_lock.h"
#include "qkv/load.h"

namespace qkv::serve {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// checkpoint-<step> directories that hold a manifest (complete), lowest step first.
json list_checkpoints(const RunsDir& runs, const Run& run) {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  for (fs::directory_iterator it(run.path, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!name.starts_with("checkpoint-") || !runs.inside(it->path() / "manifest.json")) continue;
    try {
      found.emplace_back(io::checkpoint_step(name), name);
    } catch (const Error&) {  // checkpoint-<not a number>: not a checkpoint
    }
  }
  std::sort(found.begin(), found.end());
  json out = json::array();
  for (const auto& [step, name] : found) out.push_back({{"name", name}, {"step", step}});
  return out;
}

void add_model(const RunsDir& runs, const Run& run, json& s) {
  std::optional<std::string> dir;
  try {
    dir = runs.checkpoint(run, "latest");
  } catch (const Error& e) {  // `latest` names a checkpoint that is gone: the config still reads
    s["error"] = e.what();
  }
  try {
    // A run directory that holds only checkpoints (one copied elsewhere) has its config in them.
    auto config_path = runs.inside(run.path / "config.toml");
    if (!config_path && dir) config_path = runs.inside(fs::path(*dir) / "config.toml");
    if (!config_path) return;
    const io::Config c = io::load_config(config_path->string());
    s["kind"] = enum_name(c.model.kind);
    s["n_layer"] = c.model.n_layer;
    s["n_head"] = c.model.n_head;
    s["n_embd"] = c.model.n_embd;
    s["block_size"] = c.model.block_size;
    s["max_iters"] = c.train.max_iters;
    // The vocabulary's size is in the checkpoint; the parameters follow from it.
    const auto vocab_path = dir ? runs.inside(fs::path(*dir) / "vocab.json") : std::nullopt;
    if (vocab_path) {
      const json vocab = json::parse(io::read_regular_file(*vocab_path), nullptr,
                                     /*allow_exceptions=*/false);
      if (!vocab.is_discarded()) {
        const data::Vocab v = data::Vocab::from_json(vocab, vocab_path->string());
        s["params"] = std::llround(cost::model_bytes(load::model_config(c, v.size())) / 4);
      }
    }
  } catch (const Error& e) {
    s["error"] = e.what();
  }
}

}  // namespace

MetricsSummary RunTable::metrics_summary(const Run& run) {
  const std::lock_guard lock(mutex_);
  auto it = followed_.find(run.name);
  if (it == followed_.end() || it->second.tail.path() != run.path / "metrics.jsonl")
    it = followed_.insert_or_assign(run.name, Followed{MetricsTail(run.path / "metrics.jsonl"), {}})
             .first;
  Followed& f = it->second;
  MetricsTail::Update update = f.tail.poll();
  if (update.reset) f.summary = {};
  summarise(update.lines, f.summary);
  return f.summary;
}

json RunTable::summary(const Run& run) {
  json s = {{"name", run.name}};
  pid_t pid = 0;
  try {
    pid = io::RunLock::holder(run.path.string());
  } catch (const Error& e) {  // a lock file that cannot be tested: the run still lists
    s["error"] = e.what();
  }
  s["training"] = pid > 0;
  if (pid > 0) s["pid"] = pid;
  add_model(runs_, run, s);
  if (runs_.inside(run.path / "metrics.jsonl")) {
    try {
      const MetricsSummary m = metrics_summary(run);
      if (m.last_iter >= 0) s["step"] = m.last_iter;
      s["best_val_loss"] = m.best_val_loss;
      struct stat st {};
      if (::stat((run.path / "metrics.jsonl").c_str(), &st) == 0) s["updated"] = st.st_mtime;
    } catch (const Error& e) {  // metrics.jsonl is a FIFO, say: the run still lists
      s["error"] = e.what();
    }
  }
  s["checkpoints"] = list_checkpoints(runs_, run);
  for (const char* pointer : {"latest", "best"}) {
    if (!runs_.absent_or_inside(run.path / pointer)) continue;
    try {
      if (const auto step = io::read_pointer(run.path.string(), pointer))
        s[pointer] = fmt::format("checkpoint-{}", *step);
    } catch (const Error&) {  // a damaged pointer: the run still lists
    }
  }
  return s;
}

json RunTable::list() {
  json out = json::array();
  for (const Run& run : runs_.runs()) out.push_back(summary(run));
  return {{"runs", out}};
}

}  // namespace qkv::serve
