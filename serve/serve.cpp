#include "serve.h"

#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <thread>

#include "qkv/runtime.h"
#include "loopback.h"
#include "runs_dir.h"

namespace qkv::serve {

int serve(const ServeOptions& options) {
  set_num_threads(options.threads);  // once: each request sets only its own thread's team
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

}  // namespace qkv::serve
