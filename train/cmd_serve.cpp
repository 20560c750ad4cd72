// `qkv serve [RUNS_DIR]`: the local page and JSON API over a directory of runs (serve/).
#include <memory>

#include "commands.h"
#include "qkv/generate.h"
#include "serve.h"

namespace qkv::cli {

void add_serve(CLI::App& app, std::function<int()>& run, const Environment& env) {
  auto o = std::make_shared<serve::ServeOptions>();
  o->runs_dir = "runs";
  auto precision = std::make_shared<std::string>("auto");
  CLI::App* cmd = app.add_subcommand(
      "serve",
      "Serve a local page and JSON API over a directory of runs: live loss charts, sampling, "
      "attention maps (read-only; see docs/serve.md)");
  cmd->add_option("runs_dir", o->runs_dir, "The directory of runs (or one run)")
      ->capture_default_str();
  cmd->add_option("--port", o->port, "TCP port, 0 to 65535 (0: any free one; default 8080)")
      ->check(between(0, 65535));
  cmd->add_option("--host", o->host,
                  "Address to listen on; anything but loopback lets other machines read the runs")
      ->capture_default_str();
  const serve::Limits& l = o->limits;
  cmd->add_option("--max-tokens", o->limits.max_tokens,
                  fmt::format("Tokens one sample may ask for (default {})", l.max_tokens))
      ->check(at_least(1));
  cmd->add_option("--max-beam", o->limits.max_beam,
                  fmt::format("Beam width one request may ask for, 1 to {} (default {})",
                              generate::kMaxBeam, l.max_beam))
      ->check(between(1, generate::kMaxBeam));
  cmd->add_option("--max-text", o->limits.max_text,
                  fmt::format("Characters of a prompt or input (default {})", l.max_text))
      ->check(at_least(1));
  cmd->add_option("--max-generations", o->limits.max_generations,
                  fmt::format("Requests running a model at once (default {})", l.max_generations))
      ->check(at_least(1));
  cmd->add_option("--max-streams", o->limits.max_streams,
                  fmt::format("Metrics event streams open at once (default {})", l.max_streams))
      ->check(at_least(1));
  cmd->add_option("--threads", o->threads, "Threads of one generation (0 = all cores; default 1)")
      ->check(at_least(0));
  add_precision_option(*cmd, *precision);
  on_run(*cmd, run, [o, precision, env]() -> int {
    o->precision = chosen_precision(*precision, env);
    return serve::serve(*o);
  });
}

}  // namespace qkv::cli
