// GET /api/runs, /api/run, /api/metrics and the page; the JSON answer to what the server does
// not have; and that no request changes a run.
#include <doctest/doctest.h>

#include <map>

#include "qkv/error.h"
#include "serve_fixture.h"

using namespace qkv;
using namespace qkv::testing;
using nlohmann::json;

TEST_CASE("serve: /api/runs lists every run with its model, progress and checkpoints") {
  TestRuns runs("serve_runs_list");
  TestServer server(runs.root);
  const Reply r = get(server, "/api/runs");
  REQUIRE(r.status == 200);
  const json& list = r.body["runs"];
  REQUIRE(list.size() == 3);
  CHECK(list[0]["name"] == "dec");
  CHECK(list[1]["name"] == "group/enc");
  CHECK(list[2]["name"] == "seq");
  CHECK(list[0]["kind"] == "decoder");
  CHECK(list[1]["kind"] == "encoder");
  CHECK(list[2]["kind"] == "encoder_decoder");
  CHECK(list[0]["n_layer"] == 2);
  CHECK(list[0]["n_embd"] == 32);
  CHECK(list[0]["params"].get<int64_t>() > 0);
  CHECK(list[0]["step"] == 2);
  CHECK(list[0]["best_val_loss"] == 3.75);
  CHECK_FALSE(list[1].contains("best_val_loss"));  // no metrics.jsonl
  CHECK(list[0]["training"] == false);
  CHECK(list[0]["latest"] == "checkpoint-0");
  CHECK(list[0]["checkpoints"] == json::array({{{"name", "checkpoint-0"}, {"step", 0}}}));
}

TEST_CASE("serve: a run whose lock a qkv train holds is listed as training, with its pid") {
  TestRuns runs("serve_runs_training");
  TestServer server(runs.root);
  {
    LockHolder trainer(runs.root / "dec");
    const json dec = get(server, "/api/runs").body["runs"][0];
    CHECK(dec["training"] == true);
    CHECK(dec["pid"] == trainer.pid());
  }
  CHECK(get(server, "/api/runs").body["runs"][0]["training"] == false);
}

TEST_CASE("serve: the run list follows runs appearing and metrics growing") {
  TestRuns runs("serve_runs_live");
  TestServer server(runs.root);
  CHECK(get(server, "/api/runs").body["runs"][0]["step"] == 2);
  std::ofstream(runs.root / "dec" / "metrics.jsonl", std::ios::app)
      << "{\"iter\":3,\"loss\":3.0}\n{\"iter\":3,\"val_loss\":3.5}\n{\"iter\":4,\"lo";
  const json dec = get(server, "/api/runs").body["runs"][0];
  CHECK(dec["step"] == 3);  // the line being written is not read yet
  CHECK(dec["best_val_loss"] == 3.5);

  std::filesystem::create_directories(runs.root / "fresh");
  TestRuns::write_file(runs.root / "fresh" / "config.toml", "[model]\nkind = \"decoder\"\n");
  const json list = get(server, "/api/runs").body["runs"];
  REQUIRE(list.size() == 4);
  CHECK(list[1]["name"] == "fresh");
  CHECK(list[1]["checkpoints"].empty());
  CHECK_FALSE(list[1].contains("step"));
}

TEST_CASE("serve: /api/run describes one run with its config") {
  TestRuns runs("serve_run_details");
  TestServer server(runs.root);
  const Reply r = get(server, "/api/run?run=group%2Fenc");
  REQUIRE(r.status == 200);
  CHECK(r.body["name"] == "group/enc");
  CHECK(r.body["config_toml"].get<std::string>().find("kind = 'encoder'") != std::string::npos);
}

TEST_CASE("serve: /api/metrics returns the whole lines of metrics.jsonl as objects") {
  TestRuns runs("serve_metrics");
  std::ofstream(runs.root / "dec" / "metrics.jsonl", std::ios::app) << "not json\n{\"iter\":3,";
  TestServer server(runs.root);
  const Reply r = get(server, "/api/metrics?run=dec");
  REQUIRE(r.status == 200);
  CHECK(r.body["run"] == "dec");
  REQUIRE(r.body["lines"].size() == 5);
  CHECK(r.body["lines"][0] == json{{"iter", 0}, {"loss", 4.5}});
  CHECK(r.body["lines"][4] == json{{"iter", 2}, {"val_loss", 3.75}});
  // A run without metrics yet has no lines.
  CHECK(get(server, "/api/metrics?run=seq").body["lines"].empty());
}

TEST_CASE("serve: unknown runs, checkpoints and endpoints are 404 with a JSON error") {
  TestRuns runs("serve_not_found");
  TestServer server(runs.root);
  Reply r = get(server, "/api/metrics?run=nope");
  CHECK(r.status == 404);
  CHECK(r.body["error"] == "no run 'nope' in " + std::filesystem::canonical(runs.root).string());
  r = get(server, "/api/sample?run=dec&checkpoint=checkpoint-7");
  CHECK(r.status == 404);
  CHECK(r.body["error"] == "run 'dec' has no checkpoint 'checkpoint-7'");
  r = get(server, "/api/sample?run=dec&checkpoint=best");
  CHECK(r.status == 404);
  r = get(server, "/api/nothing");
  CHECK(r.status == 404);
  CHECK(r.body["error"] == "no such endpoint: GET /api/nothing");
  r = get(server, "/api/metrics");
  CHECK(r.status == 400);
  CHECK(r.body["error"] == "give the run: ?run=NAME (GET /api/runs lists them)");
}

TEST_CASE("serve: a runs directory that is itself a run serves that one run") {
  TestRuns runs("serve_single_run");
  TestServer server(runs.root / "dec");
  const json list = get(server, "/api/runs").body["runs"];
  REQUIRE(list.size() == 1);
  CHECK(list[0]["name"] == "dec");
  CHECK(get(server, "/api/metrics?run=dec").body["lines"].size() == 5);
}

TEST_CASE("serve: a runs directory that does not exist is one clear error") {
  TempDir dir("serve_missing_root");
  CHECK_THROWS_WITH_AS(serve::Server({.runs_dir = (dir.path() / "nope").string()}),
                       doctest::Contains("nope: No such file or directory"), qkv::Error);
}

TEST_CASE("serve: / is the page, which may fetch nothing but this server's /api/") {
  TestRuns runs("serve_page");
  TestServer server(runs.root);
  httplib::Client c = server.client();
  const httplib::Result r = c.Get("/");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->get_header_value("Content-Type") == "text/html; charset=utf-8");
  CHECK(r->get_header_value("Content-Security-Policy").starts_with("default-src 'none'"));
  CHECK(r->body.find("<title>qkv serve</title>") != std::string::npos);
  // The only absolute URL is SVG's namespace, a name that nothing fetches.
  std::string rest = r->body;
  for (size_t at; (at = rest.find("http")) != std::string::npos; rest.erase(0, at + 4))
    CHECK(rest.substr(at, 26) == "http://www.w3.org/2000/svg");
  CHECK(r->body.find("src=\"") == std::string::npos);
}

TEST_CASE("serve: no endpoint changes a run: every file and its time stay as they were") {
  TestRuns runs("serve_read_only");
  auto snapshot = [&] {
    std::map<std::string, std::pair<uintmax_t, std::filesystem::file_time_type>> files;
    for (const auto& e : std::filesystem::recursive_directory_iterator(runs.root))
      files[e.path().string()] = {e.is_regular_file() ? e.file_size() : 0, e.last_write_time()};
    return files;
  };
  const auto before = snapshot();
  TestServer server(runs.root);
  for (const char* path :
       {"/", "/api/runs", "/api/run?run=dec", "/api/metrics?run=dec", "/api/sample?run=dec",
        "/api/translate?run=seq&input=ab", "/api/fill?run=group%2Fenc&text=a_",
        "/api/attention?run=dec&text=ab", "/api/attention?run=dec&text=ab&format=svg"}) {
    CAPTURE(path);
    CHECK(get(server, path).status == 200);
  }
  CHECK(snapshot() == before);
}
