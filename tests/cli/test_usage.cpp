// `qkv` as a user first meets it: help, version, config mistakes, --dump-config.
#include <doctest/doctest.h>

#include <algorithm>
#include <regex>
#include <sstream>

#include "qkv/io/config.h"
#include "qkv_cli.h"

using namespace qkv::testing;

namespace {

// The option lines of a CLI11 help text ("  --set KEY=VALUE ...   Override ...") that have no
// description after the option column.
std::vector<std::string> undescribed_options(const std::string& help) {
  std::vector<std::string> bad;
  std::istringstream in(help);
  const std::regex option_line(R"(^  (-\S+|[a-z]\S*).*)");
  const std::regex described(R"(^  \S.*?\S  +\S.{9,})");  // the column, 2+ spaces, 10+ chars
  for (std::string line; std::getline(in, line);)
    if (std::regex_match(line, option_line) && !std::regex_match(line, described))
      bad.push_back(line);
  return bad;
}

}  // namespace

TEST_CASE("qkv --help: lists the train, eval and info commands") {
  const CommandResult r = run_qkv({"--help"});
  CHECK(r.exit_code == 0);
  for (const char* command : {"train", "eval", "info"})
    CHECK_MESSAGE(std::regex_search(r.out, std::regex(std::string("\n  ") + command + " +\\S")),
                  command);
}

TEST_CASE("qkv <command> --help: every option has an explanation") {
  struct Help {
    const char* command;
    std::vector<std::string> options;
  };
  for (const Help& h : {Help{"train",
                             {"config", "--set", "--out", "--threads", "--resume", "--init-from",
                              "--allow-data-change", "--dump-config"}},
                        Help{"eval", {"checkpoint", "--data", "--batches", "--threads"}},
                        Help{"info", {"checkpoint"}},
                        Help{"serve",
                             {"runs_dir", "--port", "--host", "--max-tokens", "--max-beam",
                              "--max-text", "--max-generations", "--max-streams", "--threads",
                              "--precision"}}}) {
    CAPTURE(h.command);
    const CommandResult r = run_qkv({h.command, "--help"});
    CHECK(r.exit_code == 0);
    for (const std::string& option : h.options)
      CHECK_MESSAGE(r.out.find("  " + option + " ") != std::string::npos, option);
    CHECK(undescribed_options(r.out) == std::vector<std::string>{});
  }
}

TEST_CASE("qkv --version: the version and revision, how it was built, and what runs here") {
  const CommandResult r = run_qkv({"--version"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.starts_with("qkv " QKV_VERSION " (git "));
  CHECK(r.out.find("\nbuilt with ") != std::string::npos);
  CHECK(r.out.find(QKV_TEST_WITH_MPI ? "MPI: " : "without MPI") != std::string::npos);
  CHECK(r.out.find("\nhere: OpenBLAS kernel ") != std::string::npos);
  CHECK(r.out.find("bf16 GEMMs: ") != std::string::npos);
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 3);
  // A QKV_CPU_BF16 value qkv refuses elsewhere is reported, not fatal, here.
  setenv("QKV_CPU_BF16", "maybe", 1);
  const CommandResult odd = run_qkv({"--version"});
  unsetenv("QKV_CPU_BF16");
  CHECK(odd.exit_code == 0);
  CHECK(odd.out.find("bf16 GEMMs: no (") != std::string::npos);
}

TEST_CASE("qkv: a usage mistake is one error line and exit code 1") {
  TempDir dir("cli_usage_error");
  SUBCASE("unknown option") {
    const CommandResult r = run_qkv({"train", kTinyConfig, "--sett", "train.max_iters=1"});
    CHECK(is_one_error_line(r));
    CHECK(r.err.find("--sett") != std::string::npos);
  }
  SUBCASE("missing argument") {
    const CommandResult r = run_qkv({"info"});
    CHECK(is_one_error_line(r));
    CHECK(r.err.find("checkpoint") != std::string::npos);
  }
  SUBCASE("no command") { CHECK(is_one_error_line(run_qkv({}))); }
}

TEST_CASE("qkv train: each config mistake is one error line naming the place and the key") {
  TempDir dir("cli_config_errors");
  const std::string data = dir.write("corpus.txt", generated_corpus(200));
  const fs::path run = dir.path() / "run";
  const std::string file = (dir.path() / "config.toml").string();
  struct Case {
    std::string name;
    std::string model_lines;  // written as config.toml; line 4 is the first of them
    std::vector<std::string> args;
    std::string expected;
  };
  const std::vector<Case> cases{
      {"unknown key",
       "n_heads = 2\n",
       {"train", file},
       file + ":4: unknown key 'model.n_heads' (did you mean 'model.n_head'?)"},
      {"wrong type",
       "n_head = \"two\"\n",
       {"train", file},
       file + ":4: expected an integer for 'model.n_head', got 'two'"},
      {"out of range",
       "dropout = 1.5\n",
       {"train", file},
       file + ":4: model.dropout = 1.5 is out of range [0, 1)"},
      {"n_embd not divisible by n_head",
       "n_embd = 30\nn_head = 4\n",
       {"train", file},
       file + ":5: model.n_embd = 30 is not divisible by model.n_head = 4"},
      {"--set with a wrong type",
       "",
       {"train", file, "--set", "optim.lr=fast"},
       "--set optim.lr=fast: expected a number for 'optim.lr', got 'fast'"},
      {"--set with an unknown key",
       "",
       {"train", file, "--set", "optim.lrr=0.1"},
       "--set optim.lrr=0.1: unknown key 'optim.lrr' (did you mean 'optim.lr'?)"},
      {"--set without a value",
       "",
       {"train", file, "--set", "optim.lr"},
       "--set optim.lr: expected section.key=value"},
      {"missing config file",
       "",
       {"train", (dir.path() / "nowhere.toml").string()},
       "config file " + (dir.path() / "nowhere.toml").string() +
           ": cannot open: No such file or directory"},
      {"data.path that does not exist",
       "",
       {"train", kTinyConfig, "--set", "data.path=" + (dir.path() / "x.txt").string()},
       "data.path '" + (dir.path() / "x.txt").string() + "' does not exist"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    dir.write("config.toml", "[data]\npath = \"" + data + "\"\n[model]\n" + c.model_lines);
    std::vector<std::string> args = c.args;
    args.insert(args.end(), {"--out", run.string(), "--threads", "1"});
    const CommandResult r = run_qkv(args);
    CHECK(is_one_error_line(r));
    CHECK_MESSAGE(r.err.starts_with("error: " + c.expected), r.err);
    CHECK_FALSE(fs::exists(run));
  }
}

TEST_CASE("qkv train --dump-config: prints the resolved config with overrides, writes nothing") {
  TempDir dir("cli_dump_config");
  const fs::path run = dir.path() / "run";
  const Snapshot before = snapshot(dir.path());
  const CommandResult r =
      run_qkv({"train", kTinyConfig, "--set", "train.max_iters=7", "--set", "model.dropout=0.25",
               "--out", run.string(), "--threads", "1", "--dump-config"});
  REQUIRE(r.exit_code == 0);
  CHECK(r.err.empty());
  const qkv::io::Config c = qkv::io::parse_config(r.out, "dump");
  CHECK(c.train.max_iters == 7);
  CHECK(c.model.dropout == 0.25);
  CHECK(c.train.out_dir == run.string());
  CHECK(c.train.threads == 1);
  CHECK(c.model.n_layer == 2);   // from tiny.toml
  CHECK(c.optim.beta2 == 0.99);  // a default tiny.toml leaves alone
  CHECK(snapshot(dir.path()) == before);
}
