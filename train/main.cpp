// qkv: train small transformers on character-level text, on CPUs.
// Errors from bad input (and bad usage) are one line ("error: ...") and exit code 1; bugs are
// exit code 2. Logs go to stderr, so stdout holds only results (eval, info, --dump-config).
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <new>

#include <CLI/CLI.hpp>
#include <fmt/ranges.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "commands.h"
#include "qkv/build_info.h"
#include "qkv/did_you_mean.h"
#include "qkv/environment.h"
#include "qkv/parallel/distributed.h"
#include "qkv/error.h"
#include "qkv/runtime.h"

namespace {

// A result that did not reach stdout (a full disk, /dev/full) is a failure, whatever the
// command: `qkv eval RUN > file` must not exit 0 with the file empty. Returns the exit code.
int check_stdout(int code) {
  // std::cout writes through stdout (synced with stdio), so one fflush covers both; it comes
  // first, for its errno: a write that failed earlier leaves only ferror() set.
  errno = 0;
  const bool flushed = std::fflush(stdout) == 0;
  const int err = flushed ? 0 : errno;
  if (flushed && !std::ferror(stdout) && !std::cout.bad()) return code;
  if (code != 0) return code;  // the command failed already, and said why
  // The command has ended on every process by now, so there is no job left to end with it.
  std::fprintf(stderr, "error: standard output: cannot write%s\n",
               err ? fmt::format(": {}", std::strerror(err)).c_str() : "");
  return 1;
}

int run_command(int argc, char** argv, const qkv::Environment& env);

}  // namespace

int main(int argc, char** argv) {
  qkv::select_blas_kernel(argv);
  const qkv::Environment env = qkv::read_environment();
  return check_stdout(run_command(argc, argv, env));
}

namespace {

int run_command(int argc, char** argv, const qkv::Environment& env) {
  spdlog::set_default_logger(spdlog::stderr_color_mt("qkv"));
  spdlog::set_pattern("[%H:%M:%S] %^%v%$");

  // Named, so usage lines say `qkv` however it was started (a path, or the man page's help2man).
  CLI::App app{"qkv: train small transformers on character-level text, on CPUs.\n"
               "Configs are TOML files (see docs/config.md); runs are directories of checkpoints.",
               "qkv"};
  app.set_version_flag("--version", [&env] { return qkv::version_text(env); });
  app.require_subcommand(1);
  std::function<int()> run;
  // The processes `qkv train` joined (under a launcher): an error on one must end them all.
  const qkv::parallel::Distributed* group = nullptr;
  auto fail = [&group](int exit_code, const std::string& line) {
    if (group)
      group->end_job_after_error(exit_code, line);
    else
      std::fprintf(stderr, "%s\n", line.c_str());
    return exit_code;
  };
  qkv::cli::add_train(app, run, env, group);
  qkv::cli::add_eval(app, run, env);
  qkv::cli::add_info(app, run);
  qkv::cli::add_sample(app, run, env);
  qkv::cli::add_data(app, run);
  qkv::cli::add_plot(app, run);
  qkv::cli::add_attention(app, run);
  qkv::cli::add_serve(app, run, env);
  // A word where the command goes that names none: CLI11 would only say one is required.
  if (argc > 1 && argv[1][0] != '-') {
    std::vector<std::string> commands;
    for (const CLI::App* c : app.get_subcommands([](CLI::App*) { return true; }))
      commands.push_back(c->get_name());
    if (std::find(commands.begin(), commands.end(), argv[1]) == commands.end()) {
      std::fprintf(stderr, "error: '%s' is not a qkv command%s; the commands are %s; see qkv --help\n",
                   argv[1], qkv::did_you_mean(argv[1], commands).c_str(),
                   fmt::format("{}", fmt::join(commands, ", ")).c_str());
      return 1;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::fprintf(stderr, "error: %s; see qkv --help\n", e.what());
    return 1;
  }
  try {
    return run();
  } catch (const qkv::Error& e) {
    return fail(1, fmt::format("error: {}", e.what()));
  } catch (const std::bad_alloc&) {  // outside a tensor, which says its size (qkv::Error)
    return fail(1, "error: out of memory; lower the model's sizes (model.n_layer, model.n_embd, "
                   "model.block_size) or train.batch_size");
  } catch (const std::exception& e) {
    return fail(2, fmt::format("internal error: {}", e.what()));
  }
}

}  // namespace
