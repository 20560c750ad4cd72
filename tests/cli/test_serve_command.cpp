// `qkv serve` as a user starts it: the start-up line says where and to whom it serves, Ctrl-C
// stops it, and a bad directory or a taken port is one error line.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <regex>

#include "qkv_cli.h"

using namespace qkv::testing;

namespace {

// The start-up line's port, waiting up to 30 s for the line; 0 when it never came.
int wait_for_port(Process& serve, const fs::path& err) {
  const std::regex url(R"(http://127\.0\.0\.1:(\d+)/)");
  for (int i = 0; i < 300 && serve.running(); ++i) {
    std::smatch m;
    const std::string text = read_file(err);
    if (std::regex_search(text, m, url)) return std::stoi(m[1]);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return 0;
}

}  // namespace

TEST_CASE("qkv serve: says what it serves to whom, and Ctrl-C stops it") {
  TempDir dir("cli_serve");
  fs::create_directories(dir.path() / "runs" / "a");
  dir.write("runs/a/metrics.jsonl", "{\"iter\":0,\"loss\":1.5}\n");
  Process serve({kQkv, "serve", (dir.path() / "runs").string(), "--port", "0"});
  const int port = wait_for_port(serve, serve.err_path());
  REQUIRE(port > 0);
  CHECK(read_file(serve.err_path())
            .find(fmt::format(
                "serving 1 run in {} at http://127.0.0.1:{}/ to this machine only (--host ADDR to "
                "serve others)",
                fs::canonical(dir.path() / "runs").string(), port)) != std::string::npos);

  // The port is taken now.
  const CommandResult taken =
      run_qkv({"serve", (dir.path() / "runs").string(), "--port", std::to_string(port)});
  CHECK(taken.exit_code == 1);
  CHECK(taken.err == fmt::format("error: --host 127.0.0.1 --port {}: cannot listen there (the port "
                                 "is taken, or the address is not one of this machine's)\n",
                                 port));

  serve.send(SIGINT);
  const CommandResult r = serve.wait();
  CHECK(r.exit_code == 0);
  CHECK(r.err.find("stopping (signal 2)") != std::string::npos);
}

TEST_CASE("qkv serve: a runs directory that does not exist is one error line") {
  TempDir dir("cli_serve_missing");
  const CommandResult r = run_qkv({"serve", (dir.path() / "nope").string(), "--port", "0"});
  CHECK(r.exit_code == 1);
  CHECK(r.err == "error: " + (dir.path() / "nope").string() + ": No such file or directory\n");
}
