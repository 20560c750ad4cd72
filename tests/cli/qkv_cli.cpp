#include "cli/qkv_cli.h"

#include <doctest/doctest.h>

namespace qkv::testing {

CommandResult run_qkv(const std::vector<std::string>& args) {
  std::vector<std::string> argv{kQkv};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv);
}

std::vector<std::string> train_args(const std::string& data, const fs::path& run,
                                    const std::vector<std::string>& settings) {
  std::vector<std::string> args{"train", kTinyConfig,  "--set",     "data.path=" + data,
                                "--out", run.string(), "--threads", "1"};
  for (const std::string& s : settings) {
    args.push_back("--set");
    args.push_back(s);
  }
  return args;
}

bool is_one_error_line(const CommandResult& r) {
  const std::string& e = r.err;
  return r.exit_code == 1 && r.out.empty() && e.starts_with("error: ") && e.ends_with('\n') &&
         e.find('\n') == e.size() - 1;
}

Metrics read_metrics(const fs::path& run) {
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

Snapshot snapshot(const fs::path& root) {
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

int64_t pointer_step(const fs::path& run, const char* pointer) {
  std::ifstream in(run / pointer);
  std::string name;
  if (!std::getline(in, name) || !name.starts_with("checkpoint-")) return -1;
  return std::stoll(name.substr(std::string("checkpoint-").size()));
}

size_t count_lines(const fs::path& file) {
  std::ifstream in(file);
  size_t n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

const fs::path& trained_decoder_run(const std::string& name) {
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
