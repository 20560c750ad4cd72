// The runs under RUNS_DIR, and the only way a request reaches a file. A request names a run by
// the name the directory walk gave it (its path relative to RUNS_DIR), never by a path it
// builds, and every file the server opens must resolve, symlinks followed, inside RUNS_DIR.
// Note: the checks run before the files are opened, so someone who can write into RUNS_DIR
// could swap a file for a symlink in between; RUNS_DIR is trusted that far.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qkv::serve {

struct Run {
  std::string name;            // "shakespeare_char", "sweep/lr-3e-4"
  std::filesystem::path path;  // inside the root
};

class RunsDir {
 public:
  // Throws qkv::Error when root is not a readable directory.
  explicit RunsDir(const std::string& root);

  const std::filesystem::path& root() const { return root_; }

  // Every run, by name. A run is a directory holding config.toml, metrics.jsonl or a
  // checkpoint; the walk does not enter runs, hidden directories or what resolves outside the
  // root, and stops kMaxDepth levels down. The root itself is a run when it is one.
  std::vector<Run> runs() const;
  static constexpr int kMaxDepth = 4;

  // The run called name, or nothing: a name that is not in runs() finds nothing.
  std::optional<Run> find(std::string_view name) const;

  // p with symlinks resolved when it exists and resolves inside the root; nothing otherwise.
  std::optional<std::filesystem::path> inside(const std::filesystem::path& p) const;

  // Whether RUN/<name> is absent or resolves inside the root: a pointer file (latest, best)
  // that is a symlink out must not be read, since errors quote its first line.
  bool absent_or_inside(const std::filesystem::path& p) const;

  // A checkpoint directory of run: which = "latest" (or empty), "best", or "checkpoint-<step>".
  // Nothing when there is none by that name, or when it or any file in it resolves outside the
  // root. Throws qkv::Error when the run has checkpoints but `latest` cannot be resolved.
  std::optional<std::string> checkpoint(const Run& run, std::string_view which) const;

 private:
  std::filesystem::path root_;  // canonical
};

// Whether dir looks like a run directory (config.toml, metrics.jsonl or a checkpoint).
bool is_run_dir(const std::filesystem::path& dir);

}  // namespace qkv::serve
