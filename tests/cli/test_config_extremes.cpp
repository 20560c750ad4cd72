// The property the campaign checks: every config key set to an extreme value (0, -1, INT64_MAX,
// 1e300, nan, inf, empty, a wrong type) either trains or is refused with one error line, exit 1.
// Never a crash, never exit 2 (a bug), and never a run directory that neither `--resume` nor the
// same `qkv train` can continue. A run that would go on for ever is stopped with Ctrl-C.
// A value the config loader refuses is checked in this process: `qkv train` loads the config the
// same way and turns a qkv::Error into one error line and exit 1 (test_usage.cpp runs
// such refusals as processes). Only accepted values start a `qkv train`, since a process for each
// of ~500 values was most of this suite's time.
#include <doctest/doctest.h>
#include <signal.h>

#include <chrono>
#include <thread>

#include "qkv/error.h"
#include "qkv/io/checkpoint.h"
#include "qkv/io/config.h"
#include "qkv_cli.h"

using namespace qkv::testing;
using namespace std::chrono_literals;

namespace {

std::vector<std::string> qkv_command(const std::vector<std::string>& args) {
  std::vector<std::string> argv{kQkv};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

// Whether the config loader refuses `settings` over the tiny config with a qkv::Error (exit 1);
// any other exception fails the test, as it would be exit 2.
bool refused_by_loader(const std::vector<std::string>& settings) {
  try {
    qkv::io::load_config(kTinyConfig, settings);
    return false;
  } catch (const qkv::Error&) {
    return true;
  }
}

// Runs `qkv args`; after `patience` a Ctrl-C, and after as long again a second one.
CommandResult run_stopping(const std::vector<std::string>& args,
                           std::chrono::seconds patience = 3s) {
  Process p(qkv_command(args));
  for (int sigints = 0; sigints < 2; ++sigints) {
    const auto deadline = std::chrono::steady_clock::now() + patience;
    while (p.running() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(10ms);
    p.send(SIGINT);
  }
  return p.wait();
}

std::string last_line(const std::string& text) {
  const std::string t = text.ends_with('\n') ? text.substr(0, text.size() - 1) : text;
  return t.substr(t.rfind('\n') == std::string::npos ? 0 : t.rfind('\n') + 1);
}

// The working directory for a scope: a relative value (data.cache_dir = "x") then lands in the
// test's directory, wherever the test binary was started from.
struct InDirectory {
  const fs::path before = fs::current_path();
  explicit InDirectory(const fs::path& dir) { fs::current_path(dir); }
  ~InDirectory() { fs::current_path(before); }
};

}  // namespace

TEST_CASE("qkv train: every config key at an extreme value: no crash, no exit 2, no dead end") {
  TempDir dir("cli_config_extremes");
  const InDirectory in_test_dir(dir.path());
  const std::string data = dir.write("corpus.txt", generated_corpus(300));
  const std::vector<std::string> values{"0",   "-1",  "9223372036854775807", "1e300", "nan",
                                        "inf", "\"\"", "[1, 2]",             "true",  "\"x\""};
  const std::vector<std::string> quick{"train.max_iters=3", "train.eval_iters=2"};
  int run_number = 0;
  for (const qkv::io::KeyDoc& key : qkv::io::config_keys()) {
    for (const std::string& value : values) {
      const fs::path run = dir.path() / ("run" + std::to_string(run_number++));
      std::vector<std::string> settings = quick;
      // out_dir is where the run goes: an extreme value of it is a path under the test's
      // directory, or a path that cannot be a directory.
      const std::string setting =
          key.key != "train.out_dir" ? key.key + "=" + value
          : value == "0"             ? "train.out_dir=/proc/0/qkv"
          : value == "-1"            ? "train.out_dir=/dev/null/qkv"
                                     : "train.out_dir=" + run.string();
      settings.push_back(setting);
      if (refused_by_loader(settings)) continue;
      std::vector<std::string> args = train_args(data, run, settings);
      if (key.key == "train.out_dir") args.erase(args.begin() + 4, args.begin() + 6);  // --out
      const CommandResult r = run_stopping(args);
      INFO("--set ", setting, " exited ", r.exit_code, ": ", last_line(r.err));
      CHECK((r.exit_code == 0 || r.exit_code == 1 || r.exit_code == 130));
      if (r.exit_code == 1) CHECK(last_line(r.err).starts_with("error: "));
      if (!fs::is_directory(run) || qkv::io::holds_checkpoint(run.string())) continue;
      // A run directory without a checkpoint: the plain config starts it again.
      const CommandResult again = run_qkv(train_args(data, run, {"train.max_iters=1"}));
      CHECK_MESSAGE(again.exit_code == 0, last_line(again.err));
    }
  }
}
