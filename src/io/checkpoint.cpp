// Checkpoint directories: the atomic writer (temp dir, fsync, rename, pointer files), pruning
// and the resolver (run dir -> checkpoint dir). The loader is checkpoint_load.cpp.
#include "qkv/io/checkpoint.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <limits>
#include <optional>
#include <set>

#include "io/checkpoint_layout.h"
#include "qkv/io/durable_file.h"
#include "qkv/data/sha256.h"
#include "qkv/error.h"
#include "qkv/io/regular_file.h"
#include "qkv/io/run_lock.h"
#include "qkv/io/safetensors.h"

namespace qkv::io {
namespace {

namespace fs = std::filesystem;
using namespace layout;

std::string dir_name(int64_t step) { return fmt::format("checkpoint-{}", step); }

// A leftover of an interrupted save: ".checkpoint-<step>.<tag>-<pid>" -> (step, pid).
std::optional<std::pair<int64_t, pid_t>> parse_leftover(std::string_view name,
                                                        std::string_view tag) {
  const size_t dot = name.find('.', 1), dash = name.rfind('-');
  if (!name.starts_with('.') || dot == std::string_view::npos || dash == std::string_view::npos ||
      dash < dot || name.substr(dot + 1, dash - dot - 1) != tag)
    return std::nullopt;
  const auto step = parse_dir_name(name.substr(1, dot - 1));
  const auto pid = parse_uint(name.substr(dash + 1));
  if (!step || !pid || *pid > std::numeric_limits<pid_t>::max()) return std::nullopt;
  return std::pair(*step, static_cast<pid_t>(*pid));
}

// The last component of a path, ignoring trailing slashes ("runs/x/checkpoint-5/").
std::string base_name(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return fs::path(path).filename().string();
}

bool is_file(const fs::path& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

template <typename Json>
std::string dump(const Json& j, const fs::path& p) {
  try {
    return j.dump(2) + "\n";
  } catch (const typename Json::type_error&) {
    throw Error(fmt::format("{}: strings must be valid UTF-8", p.string()));
  }
}

uint64_t file_bytes(const fs::path& p) {
  struct stat st;
  if (::stat(p.c_str(), &st) != 0) throw_os_error(p.string(), "cannot read", errno);
  return uint64_t(st.st_size);
}

// Writes every file of a checkpoint into dir, each fsynced; manifest.json comes last.
void write_contents(const fs::path& dir, int64_t step, const CheckpointData& d) {
  write_safetensors((dir / kModel).string(), d.model,
                    {{"format", "qkv"}, {"qkv_version", QKV_VERSION}});
  write_safetensors((dir / kOptimizer).string(), d.optimizer,
                    {{"step", std::to_string(d.optimizer_step)}});
  sync_path(dir / kModel);
  sync_path(dir / kOptimizer);
  write_file_synced(dir / kTrainerState, dump(d.trainer_state, dir / kTrainerState));
  write_file_synced(dir / kConfig, d.config_toml);
  write_file_synced(dir / kVocab, dump(d.vocab, dir / kVocab));

  nlohmann::ordered_json files = nlohmann::ordered_json::object();
  for (const char* name : {kModel, kOptimizer, kTrainerState, kConfig, kVocab})
    files[name] = {{"sha256", data::sha256_file_hex((dir / name).string())},
                   {"bytes", file_bytes(dir / name)}};
  const nlohmann::ordered_json manifest = {{"format_version", kFormatVersion},
                                           {"qkv_version", QKV_VERSION},
                                           {"step", step},
                                           {"data_fingerprint", d.data_fingerprint},
                                           {"files", files}};
  write_file_synced(dir / kManifest, dump(manifest, dir / kManifest));
}

// RUN/<name> holding "checkpoint-<step>\n", replaced atomically.
void write_pointer(const fs::path& run, const std::string& name, int64_t step) {
  replace_file(run / name, dir_name(step) + "\n");
}

struct Listed {
  int64_t step;
  fs::path path;
  bool complete;  // has manifest.json
};

// checkpoint-<step> directories, highest step first.
std::vector<Listed> list_checkpoints(const fs::path& run) {
  std::error_code ec;
  std::vector<Listed> out;
  for (fs::directory_iterator it(run, ec), end; !ec && it != end; it.increment(ec)) {
    const auto step = parse_dir_name(it->path().filename().string());
    if (step && it->is_directory(ec))
      out.push_back({*step, it->path(), is_file(it->path() / kManifest)});
  }
  if (ec) throw Error(fmt::format("{}: cannot list: {}", run.string(), ec.message()));
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.step > b.step; });
  return out;
}

void remove_dir(const fs::path& p) {
  std::error_code ec;
  // Without its manifest the directory counts as incomplete, even if a crash stops the removal.
  fs::remove(p / kManifest, ec);
  fs::remove_all(p, ec);
  if (ec) throw Error(fmt::format("{}: cannot delete: {}", p.string(), ec.message()));
}

// Temp dirs of saves that died, and replaced checkpoints, except the old copy that
// resolve_checkpoint uses while `latest` names a checkpoint that a crash left missing.
void remove_leftovers(const fs::path& run, std::optional<int64_t> latest) {
  std::error_code ec;
  std::vector<fs::path> stale;
  for (fs::directory_iterator it(run, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const auto tmp = parse_leftover(name, "tmp");
    const auto old = parse_leftover(name, "old");
    const auto owner = tmp ? tmp : old;
    if (!owner) continue;
    const bool dead =
        owner->second == ::getpid() || (::kill(owner->second, 0) != 0 && errno == ESRCH);
    const bool recovery_copy =
        old && old->first == latest && !is_file(run / dir_name(old->first) / kManifest);
    if (dead && !recovery_copy) stale.push_back(it->path());
  }
  if (ec) throw Error(fmt::format("{}: cannot list: {}", run.string(), ec.message()));
  for (const fs::path& p : stale) remove_dir(p);
}

}  // namespace

std::optional<int64_t> read_pointer(const std::string& run_dir, const std::string& pointer) {
  const fs::path p = fs::path(run_dir) / pointer;
  struct stat st {};
  if (::lstat(p.c_str(), &st) != 0 && errno == ENOENT) return std::nullopt;
  const std::string content = read_regular_file(p);
  const std::string text = content.substr(0, content.find('\n'));
  const auto step = parse_dir_name(text);
  QKV_CHECK(step, "{}: expected 'checkpoint-<step>', found '{}'", p.string(), text.substr(0, 40));
  return step;
}

std::string save_checkpoint(const std::string& run_dir, int64_t step, const CheckpointData& data) {
  QKV_CHECK(step >= 0, "{}: checkpoint step {} is negative", run_dir, step);
  const fs::path run(run_dir);
  std::error_code ec;
  fs::create_directories(run, ec);
  QKV_CHECK(!ec, "{}: cannot create run directory: {}", run_dir, ec.message());
  const std::string name = dir_name(step);
  const fs::path tmp = run / fmt::format(".{}.tmp-{}", name, ::getpid()), dst = run / name;
  fs::remove_all(tmp, ec);  // left by a crashed process that had our pid
  QKV_CHECK(!ec, "{}: cannot delete: {}", tmp.string(), ec.message());
  if (::mkdir(tmp.c_str(), 0755) != 0)
    throw_os_error(run_dir, "cannot create checkpoint directory", errno);

  fs::path replaced;
  try {
    write_contents(tmp, step, data);
    sync_path(tmp);
    replaced = rename_dir_replacing(tmp, dst, run / fmt::format(".{}.old-{}", name, ::getpid()));
    sync_path(run);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  write_pointer(run, "latest", step);
  if (!replaced.empty()) fs::remove_all(replaced, ec);  // if this fails, remove_leftovers will
  return dst.string();
}

void mark_best(const std::string& run_dir, int64_t step) {
  const fs::path dir = fs::path(run_dir) / dir_name(step);
  QKV_CHECK(is_file(dir / kManifest), "{}: not a checkpoint (no manifest.json)", dir.string());
  write_pointer(run_dir, "best", step);
}

void prune_checkpoints(const std::string& run_dir, int64_t keep_last) {
  QKV_CHECK(keep_last >= 0, "{}: keep_last is {}, expected >= 0", run_dir, keep_last);
  const auto latest = read_pointer(run_dir, "latest"), best = read_pointer(run_dir, "best");
  std::set<int64_t> keep;
  for (const auto& pointer : {latest, best})
    if (pointer) keep.insert(*pointer);
  int64_t complete = 0;
  for (const Listed& c : list_checkpoints(run_dir)) {
    if (c.complete && complete++ < keep_last) keep.insert(c.step);
    if (!keep.contains(c.step)) remove_dir(c.path);
  }
  remove_leftovers(run_dir, latest);
}

bool holds_checkpoint(const std::string& run_dir) {
  std::error_code ec;
  if (fs::exists(fs::path(run_dir) / "latest", ec)) return true;
  for (fs::directory_iterator it(run_dir, ec), end; !ec && it != end; it.increment(ec))
    if (parse_dir_name(it->path().filename().string())) return true;
  return false;
}

std::string resolve_checkpoint(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    QKV_CHECK(errno != ENOENT, "{}: no such file or directory", path);
    throw_os_error(path, "cannot access", errno);
  }
  QKV_CHECK(S_ISDIR(st.st_mode), "{}: not a checkpoint (expected a checkpoint or run directory)",
            path);
  const fs::path dir(path);
  if (is_file(dir / kManifest)) return path;

  if (const auto step = read_pointer(dir, "latest")) {
    const fs::path target = dir / dir_name(*step);
    if (is_file(target / kManifest)) return target.string();
    // A same-step replace by two renames stopped between them: the old copy is complete.
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      const auto old = parse_leftover(it->path().filename().string(), "old");
      if (old && old->first == *step && is_file(it->path() / kManifest)) return it->path().string();
    }
    throw Error(
        fmt::format("{}: names {}, which is missing or incomplete; pass a checkpoint "
                    "directory ({}/checkpoint-<step>) instead",
                    (dir / "latest").string(), dir_name(*step), path));
  }

  const auto listed = list_checkpoints(dir);
  for (const Listed& c : listed)
    if (c.complete) return c.path.string();
  QKV_CHECK(listed.empty(), "{}: no complete checkpoint found ({} has no manifest.json)", path,
            listed.front().path.filename().string());
  bool has_checkpoint_files = parse_dir_name(base_name(path)).has_value();
  for (const char* file : {kModel, kOptimizer, kTrainerState, kVocab})
    has_checkpoint_files = has_checkpoint_files || is_file(dir / file);
  QKV_CHECK(!has_checkpoint_files, "{}: not a checkpoint (no manifest.json)", path);
  if (const pid_t trainer = is_file(dir / kConfig) ? RunLock::holder(path) : 0)
    throw Error(fmt::format("{}: no checkpoint yet: qkv train (pid {}) is training this run and "
                            "has not saved one; try again after its first save",
                            path, trainer));
  QKV_CHECK(!is_file(dir / kConfig),
            "{}: no checkpoint yet: the run stopped before its first save; start it again with "
            "`qkv train {} --out {}`",
            path, (dir / kConfig).string(), path);
  throw Error(
      fmt::format("{}: no checkpoint found (expected checkpoint-<step>/ directories)", path));
}

int64_t checkpoint_step(const std::string& checkpoint_dir) {
  const std::string name = base_name(checkpoint_dir);
  if (const auto step = parse_dir_name(name)) return *step;
  if (const auto old = parse_leftover(name, "old")) return old->first;
  throw Error(fmt::format("{}: not a checkpoint directory name (expected checkpoint-<step>)",
                          checkpoint_dir));
}

}  // namespace qkv::io
