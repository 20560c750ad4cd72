// What the `qkv` command tests share: running the binary, training a small run, reading
// metrics.jsonl, and snapshots of a directory tree to prove a failed command changed nothing.
#pragma once

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "qkv/data/sha256.h"
#include "support/corpus.h"
#include "support/run_command.h"
#include "support/temp_dir.h"

namespace qkv::testing {

namespace fs = std::filesystem;

inline const std::string kQkv = QKV_BINARY_DIR "/qkv";
inline const std::string kTinyConfig = QKV_SOURCE_DIR "/configs/tiny.toml";

// Runs `qkv args...` to completion.
CommandResult run_qkv(const std::vector<std::string>& args);

// `qkv train` of the tiny config on `data` into `run`, on one thread: the other cores may be
// busy, and one thread keeps each run fast and its losses fixed.
std::vector<std::string> train_args(const std::string& data, const fs::path& run,
                                    const std::vector<std::string>& settings = {});

// A user-facing error: exit code 1, nothing on stdout, and exactly one line on stderr that
// starts with "error: " (no stack trace, no second line of noise).
bool is_one_error_line(const CommandResult& r);

struct Metrics {
  std::vector<int64_t> iters;  // training lines, in file order
  std::vector<double> loss;
  std::vector<int64_t> eval_iters;  // evaluation lines, in file order
  std::vector<double> val_loss;
};

Metrics read_metrics(const fs::path& run);

// Every entry under root (relative path) -> the SHA-256 of a file's bytes, "dir", or the target
// of a symlink: equal snapshots mean nothing was created, deleted or changed.
using Snapshot = std::map<std::string, std::string>;

Snapshot snapshot(const fs::path& root);

// The step RUN/<pointer> names ("checkpoint-12\n" -> 12), or -1 when there is no pointer.
int64_t pointer_step(const fs::path& run, const char* pointer);

inline int64_t latest_step(const fs::path& run) { return pointer_step(run, "latest"); }

size_t count_lines(const fs::path& file);

// Polls until ready(), or until the process ends or hangs (then false).
template <class Ready>
bool wait_until(Process& process, Ready ready,
                std::chrono::seconds timeout = std::chrono::seconds(60)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!ready()) {
    if (!process.running() || std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// A decoder trained 5 steps in its own temp directory `name`, once per test process, for the
// cases that only read a run.
const fs::path& trained_decoder_run(const std::string& name);

}  // namespace qkv::testing
