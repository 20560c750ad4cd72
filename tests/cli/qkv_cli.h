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
inline CommandResult run_qkv(const std::vector<std::string>& args) {
  std::vector<std::string> argv{kQkv};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv);
}

// `qkv train` of the tiny config on `data` into `run`, on one thread: the other cores may be
// busy, and one thread keeps each run fast and its losses fixed.
inline std::vector<std::string> train_args(const std::string& data, const fs::path& run,
                                           const std::vector<std::string>& settings = {}) {
  std::vector<std::string> args{"train", kTinyConfig,  "--set",     "data.path=" + data,
                                "--out", run.string(), "--threads", "1"};
  for (const std::string& s : settings) {
    args.push_back("--set");
    args.push_back(s);
  }
  return args;
}

// A user-facing error: exit code 1, nothing on stdout, and exactly one line on stderr that
// starts with "error: " (no stack trace, no second line of noise).
inline bool is_one_error_line(const CommandResult& r) {
  const std::string& e = r.err;
  return r.exit_code == 1 && r.out.empty() && e.starts_with("error: ") && e.ends_with('\n') &&
         e.find('\n') == e.size() - 1;
}

struct Metrics {
  std::vector<int64_t> iters;  // training lines, in file order
  std::vector<double> loss;
  std::vector<int64_t> eval_iters;  // evaluation lines, in file order
  std::vector<double> val_loss;
};

inline Metrics read_metrics(const fs::path& run) {
  Metrics m;
  std::ifstream in(run / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) {
      m.iters.push_back(j.at("iter").get<int64_t>());
      m.loss.push_back(j.at("loss").get<double>());
    }
    if (j.contains("val_loss")) {
      m.eval_iters.push_back(j.at("iter").get<int64_t>());
      m.val_loss.push_back(j.at("val_loss").get<double>());
    }
  }
  return m;
}

// Every entry under root (relative path) -> the SHA-256 of a file's bytes, "dir", or the target
// of a symlink: equal snapshots mean nothing was created, deleted or changed.
using Snapshot = std::map<std::string, std::string>;

inline Snapshot snapshot(const fs::path& root) {
  Snapshot s;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    const std::string rel = fs::relative(e.path(), root).string();
    if (e.is_symlink())
      s[rel] = "-> " + fs::read_symlink(e.path()).string();
    else if (e.is_directory())
      s[rel] = "dir";
    else
      s[rel] = data::sha256_file_hex(e.path().string());
  }
  return s;
}

// The step RUN/<pointer> names ("checkpoint-12\n" -> 12), or -1 when there is no pointer.
inline int64_t pointer_step(const fs::path& run, const char* pointer) {
  std::ifstream in(run / pointer);
  std::string name;
  if (!std::getline(in, name) || !name.starts_with("checkpoint-")) return -1;
  return std::stoll(name.substr(std::string("checkpoint-").size()));
}

inline int64_t latest_step(const fs::path& run) { return pointer_step(run, "latest"); }

inline size_t count_lines(const fs::path& file) {
  std::ifstream in(file);
  size_t n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

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
inline const fs::path& trained_decoder_run(const std::string& name) {
  static std::map<std::string, std::pair<std::unique_ptr<TempDir>, fs::path>> runs;
  auto& [dir, run] = runs[name];
  if (!dir) {
    dir = std::make_unique<TempDir>(name);
    const std::string data = dir->write("corpus.txt", generated_corpus(300));
    run = dir->path() / "run";
    const CommandResult t = run_qkv(train_args(data, run, {"train.max_iters=5"}));
    REQUIRE_MESSAGE(t.exit_code == 0, t.err);
  }
  return run;
}

}  // namespace qkv::testing
