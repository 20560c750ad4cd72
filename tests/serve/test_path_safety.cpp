// Requests that try to reach files outside RUNS_DIR: `..`, absolute paths, symlinks out and
// encoded variants. Each is a 404, and no answer carries a byte of the files outside.
#include <doctest/doctest.h>

#include "serve_fixture.h"

using namespace qkv;
using namespace qkv::testing;
namespace fs = std::filesystem;

namespace {

constexpr const char* kSecret = "SECRET-OUTSIDE-THE-RUNS";

// TestRuns, plus a run outside the runs directory (its metrics and config hold kSecret) and
// links from inside to it.
struct Escapes {
  TestRuns runs{"serve_paths"};
  fs::path outside = runs.dir.path() / "outside";
  Escapes() {
    const io::Config dc = tiny_config(nn::ModelKind::decoder);
    save_run(outside, dc, runs.text, *make_model<nn::DecoderModel>(dc, runs.text, 3));
    TestRuns::write_file(outside / "metrics.jsonl",
                         fmt::format("{{\"iter\":0,\"loss\":1,\"note\":\"{}\"}}\n", kSecret));
    TestRuns::write_file(outside / "secret.txt", std::string(kSecret) + "\n");
    fs::create_directory_symlink(outside, runs.root / "link");
    // A run of its own whose files lead out.
    const fs::path leaky = runs.root / "leaky";
    fs::create_directories(leaky);
    fs::create_symlink(outside / "metrics.jsonl", leaky / "metrics.jsonl");
    fs::create_symlink(outside / "secret.txt", leaky / "best");
    fs::create_directory_symlink(outside / "checkpoint-0", leaky / "checkpoint-0");
    // A run whose checkpoint holds one file that leads out.
    fs::copy(runs.root / "dec", runs.root / "decoy", fs::copy_options::recursive);
    fs::remove(runs.root / "decoy" / "checkpoint-0" / "vocab.json");
    fs::create_symlink(outside / "checkpoint-0" / "vocab.json",
                       runs.root / "decoy" / "checkpoint-0" / "vocab.json");
  }
};

void check_refused(const TestServer& server, const std::string& path) {
  CAPTURE(path);
  const Reply r = get(server, path);
  CHECK(r.status == 404);
  CHECK(r.body.contains("error"));
  CHECK(r.text.find(kSecret) == std::string::npos);
}

}  // namespace

TEST_CASE("serve: run names that leave the runs directory are 404") {
  Escapes e;
  TestServer server(e.runs.root);
  const std::string out = e.outside.string();
  for (const std::string& run :
       {std::string("../outside"), std::string("..%2Foutside"), std::string("%2E%2E%2Foutside"),
        std::string("%252E%252E%252Foutside"), url_encode(out), out,
        std::string("dec%2F..%2F..%2Foutside"), std::string("link"), std::string("dec%2F.."),
        std::string("."), std::string("dec%00"), std::string("%2Fetc%2Fpasswd")})
    for (const char* endpoint : {"/api/metrics", "/api/run", "/api/metrics/events"})
      check_refused(server, fmt::format("{}?run={}", endpoint, run));
}

TEST_CASE("serve: checkpoint names that leave the run are 404") {
  Escapes e;
  TestServer server(e.runs.root);
  for (const std::string& checkpoint :
       {std::string("..%2F..%2Foutside%2Fcheckpoint-0"),
        url_encode((e.outside / "checkpoint-0").string()),
        std::string("checkpoint-0%2F..%2F..%2F..%2Foutside"), std::string("%2E%2E"),
        std::string("checkpoint-0%2F."), std::string("checkpoint-%2D1")})
    for (const char* endpoint : {"/api/sample", "/api/attention"})
      check_refused(server, fmt::format("{}?run=dec&checkpoint={}&text=a", endpoint, checkpoint));
}

TEST_CASE("serve: symlinks out of the runs directory are never followed") {
  Escapes e;
  TestServer server(e.runs.root);
  // The link to a run outside is not a run; the run whose files lead out lists without them.
  const Reply list = get(server, "/api/runs");
  CHECK(list.text.find(kSecret) == std::string::npos);
  std::vector<std::string> names;
  for (const auto& run : list.body["runs"]) names.push_back(run["name"]);
  CHECK(names == std::vector<std::string>{"dec", "decoy", "group/enc", "leaky", "seq"});
  const nlohmann::json leaky = list.body["runs"][3];
  CHECK(leaky["checkpoints"].empty());
  CHECK_FALSE(leaky.contains("best"));

  check_refused(server, "/api/metrics?run=leaky");
  check_refused(server, "/api/metrics/events?run=leaky");
  check_refused(server, "/api/sample?run=leaky");
  check_refused(server, "/api/sample?run=leaky&checkpoint=best");
  check_refused(server, "/api/sample?run=leaky&checkpoint=checkpoint-0");
  check_refused(server, "/api/sample?run=decoy");
  check_refused(server, "/api/fill?run=decoy&text=a_");
}

TEST_CASE("serve: paths in the URL itself reach no file") {
  Escapes e;
  TestServer server(e.runs.root);
  for (const char* path :
       {"/../outside/secret.txt", "/%2E%2E/outside/secret.txt", "/api/../../outside/secret.txt",
        "/runs/dec/metrics.jsonl", "/dec/metrics.jsonl", "//etc/passwd"})
    check_refused(server, path);
}

TEST_CASE("serve: a loopback server answers only requests that name this machine") {
  TestRuns runs("serve_host");
  TestServer server(runs.root);
  httplib::Client c = server.client();
  for (const char* host : {"127.0.0.1", "localhost", "[::1]"}) {
    const httplib::Result r =
        c.Get("/api/runs", {{"Host", fmt::format("{}:{}", host, server.port())}});
    REQUIRE(r);
    CHECK(r->status == 200);
  }
  // A name that a page elsewhere had resolve to 127.0.0.1 (DNS rebinding).
  const httplib::Result r = c.Get("/api/runs", {{"Host", "rebind.example:8080"}});
  REQUIRE(r);
  CHECK(r->status == 403);
  CHECK(nlohmann::json::parse(r->body)["error"] ==
        "Host 'rebind.example:8080' is not this server: it answers only to localhost, "
        "127.x.y.z and [::1]");
}
