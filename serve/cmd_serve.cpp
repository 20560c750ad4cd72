#include "cmd_serve.h"

#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <thread>

#include "commands.h"
#include "runs_dir.h"
#include "server.h"

namespace qkv::serve {
namespace {

int serve(ServeOptions options) {
  // Ctrl-C and SIGTERM are taken by sigwait below, never by a server thread: every thread
  // started from here inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  Server server(options);
  const int port = server.bind();
  const RunsDir runs(options.runs_dir);
  const std::string url = fmt::format(
      "http://{}:{}/",
      options.host.find(':') == std::string::npos ? options.host : "[" + options.host + "]", port);
  const size_t n = runs.runs().size();
  if (is_loopback(options.host))
    spdlog::info("serving {} run{} in {} at {} to this machine only (--host ADDR to serve others)",
                 n, n == 1 ? "" : "s", runs.root().string(), url);
  else
    spdlog::warn(
        "serving {} run{} in {} at {} to every machine that can reach {}: they can read "
        "these runs and run their models",
        n, n == 1 ? "" : "s", runs.root().string(), url, options.host);
  std::thread http([&server] {
    server.run();
    ::kill(::getpid(), SIGTERM);  // run() ended on its own: let the wait below end too
  });
  int signal = 0;
  sigwait(&signals, &signal);
  spdlog::info("stopping (signal {})", signal);
  server.stop();
  http.join();
  return 0;
}

}  // namespace

void add_serve(CLI::App& app, std::function<int()>& run) {
  auto o = std::make_shared<ServeOptions>();
  o->runs_dir = "runs";
  auto precision = std::make_shared<std::string>("auto");
  CLI::App* cmd = app.add_subcommand(
      "serve",
      "Serve a local page and JSON API over a directory of runs: live loss charts, sampling, "
      "attention maps (read-only; see docs/serve.md)");
  cmd->add_option("runs_dir", o->runs_dir, "The directory of runs (or one run)")
      ->capture_default_str();
  cmd->add_option("--port", o->port, "TCP port, 0 to 65535 (0: any free one; default 8080)")
      ->check(CLI::Range(0, 65535).description(""));
  cmd->add_option("--host", o->host,
                  "Address to listen on; anything but loopback lets other machines read the runs")
      ->capture_default_str();
  const Limits& l = o->limits;
  cmd->add_option("--max-tokens", o->limits.max_tokens,
                  fmt::format("Tokens one sample may ask for (default {})", l.max_tokens))
      ->check(train::at_least(1));
  cmd->add_option("--max-beam", o->limits.max_beam,
                  fmt::format("Beam width one request may ask for (default {})", l.max_beam))
      ->check(train::at_least(1));
  cmd->add_option("--max-text", o->limits.max_text,
                  fmt::format("Characters of a prompt or input (default {})", l.max_text))
      ->check(train::at_least(1));
  cmd->add_option("--max-generations", o->limits.max_generations,
                  fmt::format("Requests running a model at once (default {})", l.max_generations))
      ->check(train::at_least(1));
  cmd->add_option("--max-streams", o->limits.max_streams,
                  fmt::format("Metrics event streams open at once (default {})", l.max_streams))
      ->check(train::at_least(1));
  cmd->add_option("--threads", o->threads, "Threads of one generation (0 = all cores; default 1)")
      ->check(train::at_least(0));
  train::add_precision_option(*cmd, *precision);
  cmd->callback([&run, o, precision] {
    run = [o, precision]() -> int {
      o->precision = choose_precision(train::parse_precision(*precision), "--precision",
                                      bf16_support(std::getenv("QKV_CPU_BF16")))
                         .precision;
      return serve(*o);
    };
  });
}

}  // namespace qkv::serve
