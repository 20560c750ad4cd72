// Running checkpoints through the API: /api/sample streams what `qkv sample` generates,
// /api/translate, /api/fill and /api/attention answer what the library computes, and each
// limit and bad input is a 4xx with a JSON error.
#include <doctest/doctest.h>

#include "qkv/generate.h"
#include "qkv/inspect/attention_probe.h"
#include "serve_fixture.h"
#include "server_state.h"
#include "sse.h"

using namespace qkv;
using namespace qkv::testing;
using nlohmann::json;

namespace {

// The events of a streamed sample, or of an error answer the one event "status".
std::vector<Event> sample_events(const TestServer& server, const std::string& query) {
  httplib::Client c = server.client();
  const httplib::Result r = c.Get("/api/sample?" + query);
  REQUIRE(r);
  if (r->status != 200)
    return {{"status", {{"status", r->status}, {"body", json::parse(r->body)}}}};
  CHECK(r->get_header_value("Content-Type") == "text/event-stream");
  std::string text = r->body;
  std::vector<Event> events = take_events(text);
  CHECK(text.empty());
  return events;
}

}  // namespace

TEST_CASE("serve: /api/sample streams the tokens qkv sample prints, then a done event") {
  TestRuns runs("serve_sample");
  TestServer server(runs.root);
  const std::vector<Event> events = sample_events(
      server, "run=dec&prompt=the%20cat&max_tokens=30&seed=7&temperature=0.8&top_k=200");
  REQUIRE(events.size() == 31);
  std::string streamed;
  for (size_t i = 0; i < 30; ++i) {
    CHECK(events[i].name == "token");
    streamed += events[i].data["text"].get<std::string>();
  }
  CHECK(events[30].name == "done");
  CHECK(events[30].data["text"] == streamed);
  CHECK(events[30].data["tokens"] == 30);
  CHECK(events[30].data["checkpoint"] == "checkpoint-0");

  auto model = make_model<nn::DecoderModel>(tiny_config(nn::ModelKind::decoder), runs.text, 3);
  Rng rng(7, 0);
  const generate::Generation g =
      generate::sample(*model, runs.text, runs.text.encode("the cat"), {.max_new_tokens = 30}, rng);
  CHECK(streamed == g.text);
}

TEST_CASE("serve: /api/translate returns the beam's outputs, best first, with scores") {
  TestRuns runs("serve_translate");
  TestServer server(runs.root);
  const Reply r = get(server, "/api/translate?run=seq&input=abcd&beam=3&n_best=2");
  REQUIRE(r.status == 200);
  const json& hyps = r.body["hypotheses"];
  REQUIRE(hyps.size() == 2);
  CHECK(hyps[0]["score"].get<double>() >= hyps[1]["score"].get<double>());

  auto model = make_model<nn::EncoderDecoderModel>(tiny_config(nn::ModelKind::encoder_decoder),
                                                   runs.pairs, 5);
  const auto expected = generate::translate(*model, runs.pairs, runs.pairs.encode("abcd"),
                                            {.search = {.beam = 3, .n_best = 2}});
  CHECK(hyps[0]["text"] == runs.pairs.decode(expected[0].tokens));
  CHECK(hyps[0]["score"].get<double>() == doctest::Approx(expected[0].score));
  CHECK(hyps[1]["log_prob"].get<double>() == doctest::Approx(expected[1].log_prob));
}

TEST_CASE("serve: /api/fill fills the masked characters, with candidates") {
  TestRuns runs("serve_fill");
  TestServer server(runs.root);
  const Reply r = get(server, "/api/fill?run=group%2Fenc&text=the%20c_t&top_k=3");
  REQUIRE(r.status == 200);
  auto model = make_model<nn::EncoderModel>(tiny_config(nn::ModelKind::encoder), runs.masked, 7);
  const generate::Fill f = generate::fill_masks(*model, runs.masked, "the c_t", U'_', 3);
  CHECK(r.body["text"] == f.text);
  REQUIRE(r.body["positions"].size() == 1);
  CHECK(r.body["positions"][0]["position"] == 5);
  REQUIRE(r.body["positions"][0]["candidates"].size() == 3);
  CHECK(r.body["positions"][0]["candidates"][0]["prob"].get<double>() ==
        doctest::Approx(f.positions[0].candidates[0].second));
}

TEST_CASE("serve: /api/attention gives qkv attention's panels as JSON or its SVG") {
  TestRuns runs("serve_attention");
  TestServer server(runs.root);
  Reply r = get(server, "/api/attention?run=dec&text=the%20cat");
  REQUIRE(r.status == 200);
  CHECK(r.body["panels"].size() == 4);  // 2 layers x 2 heads
  CHECK(r.body["panels_per_row"] == 2);
  CHECK(r.body["row_labels"].size() == 7);
  CHECK(r.body["panels"][0]["weights"].size() == 49);
  CHECK(r.body["panels"][0]["title"] == "layer 0 · head 0");

  r = get(server, "/api/attention?run=seq&text=abc&target=cba&part=cross&layer=1&head=0");
  REQUIRE(r.status == 200);
  CHECK(r.body["panels"].size() == 1);
  CHECK(r.body["col_labels"] == json::array({"a", "b", "c"}));

  httplib::Client c = server.client();
  const httplib::Result svg = c.Get("/api/attention?run=dec&text=the%20cat&format=svg");
  REQUIRE(svg);
  CHECK(svg->status == 200);
  CHECK(svg->get_header_value("Content-Type") == "image/svg+xml");
  CHECK(svg->body.find("<svg") != std::string::npos);
  CHECK(svg->body.find("of dec/checkpoint-0 (decoder model)") != std::string::npos);
}

TEST_CASE("serve: each model kind has its endpoint; another kind's is a 400 naming the right one") {
  TestRuns runs("serve_kinds");
  TestServer server(runs.root);
  Reply r = get(server, "/api/sample?run=seq&prompt=a");
  CHECK(r.status == 400);
  CHECK(r.body["error"] ==
        "/api/sample is for decoder models; run 'seq' is of kind encoder_decoder (use "
        "/api/translate)");
  r = get(server, "/api/fill?run=dec&text=a_");
  CHECK(r.status == 400);
  CHECK(r.body["error"] ==
        "/api/fill is for encoder models; run 'dec' is of kind decoder (use /api/sample)");
}

TEST_CASE("serve: limits and bad input are 4xx answers with one-line JSON errors") {
  TestRuns runs("serve_limits");
  TestServer server(runs.root, {.max_tokens = 50, .max_beam = 4, .max_text = 10});
  auto error = [&](const std::string& path, int status) {
    CAPTURE(path);
    const Reply r = get(server, path);
    CHECK(r.status == status);
    return r.body.value("error", std::string());
  };
  CHECK(error("/api/sample?run=dec&max_tokens=51", 400) ==
        "max_tokens 51 is above this server's limit of 50 (qkv serve --max-tokens)");
  CHECK(error("/api/translate?run=seq&input=ab&beam=5", 400) ==
        "beam 5 is above this server's limit of 4 (qkv serve --max-beam)");
  CHECK(error("/api/sample?run=dec&prompt=the%20old%20king", 413) ==
        "prompt has 12 characters, above this server's limit of 10 (qkv serve --max-text)");
  CHECK(error("/api/translate?run=seq&input=abcdefghabc", 413) ==
        "input has 11 characters, above this server's limit of 10 (qkv serve --max-text)");
  CHECK(error("/api/sample?run=dec&max_tokens=many", 400) ==
        "max_tokens: expected a whole number, got 'many'");
  CHECK(error("/api/sample?run=dec&temperature=-1", 400).find("temperature") != std::string::npos);
  CHECK(error("/api/sample?run=dec&top_p=nan", 400) == "top_p: expected a number, got 'nan'");
  CHECK(error("/api/sample?run=dec&window=wide", 400) ==
        "window: expected exact or chunked, got 'wide'");
  CHECK(error("/api/sample?run=dec&prompt=", 400) ==
        "prompt is empty; give at least one character");
  CHECK(error("/api/sample?run=dec&prompt=%C3%A9", 400).find("'é'") != std::string::npos);
  CHECK(error("/api/sample?run=dec&prompt=%FF", 400).find("UTF-8") != std::string::npos);
  CHECK(error("/api/translate?run=seq&input=ab&beam=2&n_best=3", 400).find("n_best") !=
        std::string::npos);
  CHECK(error("/api/translate?run=seq&input=ab&max_length=99", 400) ==
        "max_length 99 must be between 1 and 15: the decoder holds block_size = 16 positions, "
        "<bos> and the output");
  CHECK(error("/api/fill?run=group%2Fenc&text=abc", 400).find("mask") != std::string::npos);
  CHECK(error("/api/attention?run=dec&text=a&layer=5", 400) ==
        "layer 5: the model has 2 layers (0 to 1)");
  CHECK(error("/api/attention?run=seq&text=ab", 400) ==
        "an encoder-decoder model needs target: the output to feed the decoder (for example the "
        "expected answer)");
  CHECK(error("/api/attention?run=dec&text=a&format=png", 400) ==
        "format: expected json or svg, got 'png'");
}

TEST_CASE("serve: generations beyond --max-generations are refused with 429") {
  TestRuns runs("serve_busy");
  TestServer server(runs.root, {.max_generations = 0});
  for (const char* path : {"/api/sample?run=dec", "/api/translate?run=seq&input=ab",
                           "/api/fill?run=group%2Fenc&text=a_", "/api/attention?run=dec&text=a"}) {
    CAPTURE(path);
    const Reply r = get(server, path);
    CHECK(r.status == 429);
    CHECK(r.body["error"] ==
          "0 generations are running, this server's limit (qkv serve --max-generations); try "
          "again when one ends");
  }
}

TEST_CASE("serve: a gate admits up to its capacity and frees a place when its holder goes") {
  serve::Gate gate(2);
  std::shared_ptr<void> a = gate.try_enter(), b = gate.try_enter();
  CHECK(a);
  CHECK(b);
  CHECK_FALSE(gate.try_enter());
  a.reset();
  std::shared_ptr<void> c = gate.try_enter();
  CHECK(c);
  CHECK_FALSE(gate.try_enter());
}

TEST_CASE("serve: a checkpoint that fails verification answers its error") {
  TestRuns runs("serve_corrupt");
  const auto model =
      std::filesystem::canonical(runs.root / "dec" / "checkpoint-0" / "model.safetensors");
  std::string bytes = read_file(model);
  bytes[bytes.size() - 1] ^= 1;
  TestRuns::write_file(model, bytes);
  TestServer server(runs.root);
  const Reply r = get(server, "/api/sample?run=dec&prompt=a");
  CHECK(r.status == 500);
  CHECK(r.body["error"] == model.string() +
                               ": SHA-256 does not match the manifest; the file is "
                               "corrupt — resume from an earlier checkpoint");
}
