// Running a run's checkpoint: GET /api/sample (a decoder's text, streamed token by token as
// server-sent events), /api/translate (an encoder-decoder's outputs, greedy or beam, with their
// scores), /api/fill (an encoder's masked characters, with candidates) and /api/attention (the
// heatmaps `qkv attention` draws, as JSON or SVG). Each loads the checkpoint for itself.
#include <fmt/format.h>
#include <omp.h>

#include <chrono>
#include <filesystem>

#include "http_error.h"
#include "qkv/cost.h"
#include "qkv/data/utf8.h"
#include "qkv/generate.h"
#include "qkv/inspect/attention_probe.h"
#include "qkv/load.h"
#include "server_state.h"

namespace qkv::serve {
namespace {

using load::LoadedModel;
using nlohmann::json;

// Thrown from inside a generation to end it: the client went away or the server is stopping.
struct Abandoned {};

// The text parameter `name`, at most max_text characters (HttpError 413 beyond).
std::string bounded_text(State& state, const httplib::Request& req, const std::string& name) {
  std::string text = text_param(req, name);
  const int64_t n = int64_t(data::decode_utf8(text, name).size());
  const int64_t limit = state.options.limits.max_text;
  if (n > limit)
    fail(413, "{} has {} characters, above this server's limit of {} (qkv serve --max-text)", name,
         n, limit);
  return text;
}

// A place among the generations running, held by the returned pointer (HttpError 429 when all
// are taken: each runs a model on the same few cores).
std::shared_ptr<void> enter_generation(State& state) {
  std::shared_ptr<void> place = state.generations.try_enter();
  if (!place)
    fail(429,
         "{} generations are running, this server's limit (qkv serve --max-generations); try "
         "again when one ends",
         state.options.limits.max_generations);
  return place;
}

std::string_view endpoint_for(nn::ModelKind kind) {
  switch (kind) {
    case nn::ModelKind::decoder:
      return "/api/sample";
    case nn::ModelKind::encoder_decoder:
      return "/api/translate";
    case nn::ModelKind::encoder:
      return "/api/fill";
  }
  return "";
}

// A generation's OpenMP loops run on the request's own thread, and OpenMP's team size is a
// setting of each thread: this sets the request thread's, not the process-wide count, which
// serve() set once.
void use_generation_threads(const State& state) {
  const int n = state.options.threads;
  omp_set_num_threads(n > 0 ? n : omp_get_num_procs());
}

// The request's checkpoint, loaded. One that vanished while it was looked up, or whose manifest
// is gone once it failed to load, was pruned meanwhile (its trainer saved a newer one; pruning
// deletes the manifest first): it is looked up again, so a run being written fails no request.
// Each retry means a newer checkpoint was saved meanwhile, so only a run that keeps saving
// faster than a load finishes (a test's trainer, a load slowed by a sanitizer) reaches the bound.
LoadedModel load_requested(State& state, const Run& run, const httplib::Request& req) {
  constexpr int kAttempts = 20;
  for (int attempt = 1;; ++attempt) {
    std::string dir;
    try {
      dir = find_checkpoint(state, run, req);
      return load::load_model(dir, {.precision = state.options.precision});
    } catch (const Error& e) {
      std::error_code ec;
      const bool pruned =
          dir.empty() || !std::filesystem::exists(std::filesystem::path(dir) / "manifest.json", ec);
      if (attempt == kAttempts || !pruned) {
        if (dynamic_cast<const HttpError*>(&e)) throw;
        throw HttpError(500, e.what());  // the checkpoint's own error names the file at fault
      }
    }
  }
}

// The request's checkpoint, loaded; HttpError 400 when its model is not of `kind`.
std::shared_ptr<LoadedModel> load_kind(State& state, const httplib::Request& req,
                                       nn::ModelKind kind) {
  const Run run = find_run(state, req);
  auto m = std::make_shared<LoadedModel>(load_requested(state, run, req));
  const nn::ModelKind actual = m->config.model.kind;
  if (actual != kind)
    fail(400, "{} is for {} models; run '{}' is of kind {} (use {})", endpoint_for(kind),
         enum_name(kind), run.name, enum_name(actual), endpoint_for(actual));
  use_generation_threads(state);
  return m;
}

std::string checkpoint_name(const LoadedModel& m) {
  return std::filesystem::path(m.dir).filename().string();
}

void sample(State& state, const httplib::Request& req, httplib::Response& res) {
  const Limits& limits = state.options.limits;
  generate::SamplingOptions o{
      .max_new_tokens = int_param(req, "max_tokens", std::min<int64_t>(200, limits.max_tokens))};
  check_limit("max_tokens", o.max_new_tokens, limits.max_tokens, "--max-tokens");
  o.temperature = float(number_param(req, "temperature", o.temperature));
  o.top_k = int_param(req, "top_k", o.top_k);
  if (o.top_k < 1) fail(400, "top_k {} must be at least 1, as qkv sample --top-k", o.top_k);
  o.top_p = float(number_param(req, "top_p", o.top_p));
  const std::string window = text_param(req, "window", "exact");
  const auto policy = parse_enum<generate::WindowPolicy>(window);
  if (!policy) fail(400, "window: expected exact or chunked, got '{}'", window);
  o.window = *policy;
  generate::validate(o);
  const int64_t seed = int_param(req, "seed", 1337);
  if (seed < 0) fail(400, "seed: expected a whole number >= 0, got {}", seed);
  const std::string prompt = req.has_param("prompt") ? bounded_text(state, req, "prompt") : "\n";
  if (prompt.empty()) fail(400, "prompt is empty; give at least one character");

  // Given back as soon as the model is done, before the last event: a client that has read
  // it may start the next sample at once.
  auto place = std::make_shared<std::shared_ptr<void>>(enter_generation(state));
  std::shared_ptr<LoadedModel> m = load_kind(state, req, nn::ModelKind::decoder);
  const std::vector<int32_t> ids = m->vocab.encode(prompt, "prompt");
  cost::check_generation_fits(m->model_config, 1, o.max_new_tokens,
                              fmt::format("max_tokens {}", o.max_new_tokens));
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider("text/event-stream", [&state, m, ids, o, seed, place](
                                                            size_t, httplib::DataSink& sink) {
    auto send = [&sink](const std::string& event) {
      if (!sink.write(event.data(), event.size())) throw Abandoned{};
    };
    std::string last;  // the "done" or "error" event
    try {
      use_generation_threads(state);
      const auto t0 = std::chrono::steady_clock::now();
      // Stream 0 of the seed: what `qkv sample --seed S` prints first.
      Rng rng(uint64_t(seed), 0);
      const generate::Generation g =
          generate::sample(dynamic_cast<nn::DecoderModel&>(*m->model), m->vocab, ids, o, rng,
                           [&](const generate::GeneratedToken& t) {
                             if (state.stopping) throw Abandoned{};
                             send(sse_event("token", {{"text", std::string(t.text)}}));
                           });
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      last = sse_event("done", {{"text", g.text},
                                {"tokens", g.tokens.size()},
                                {"stop", g.stop},
                                {"ms", ms},
                                {"checkpoint", checkpoint_name(*m)}});
    } catch (const Abandoned&) {
      return false;
    } catch (const std::exception& e) {  // nothing may escape into httplib's writer
      last = sse_event("error", {{"error", e.what()}});
    }
    place->reset();
    if (!sink.write(last.data(), last.size())) return false;
    sink.done();
    return true;
  });
}

void translate(State& state, const httplib::Request& req, httplib::Response& res) {
  const std::string input = bounded_text(state, req, "input");
  if (input.empty()) fail(400, "give the input: ?input=TEXT");
  generate::TranslateOptions o;
  o.search.beam = int_param(req, "beam", 1);
  check_limit("beam", o.search.beam, state.options.limits.max_beam, "--max-beam");
  o.search.n_best = int_param(req, "n_best", o.search.beam);
  o.search.length_penalty = number_param(req, "length_penalty", o.search.length_penalty);
  generate::validate(o.search);

  const std::shared_ptr<void> place = enter_generation(state);
  const std::shared_ptr<LoadedModel> m = load_kind(state, req, nn::ModelKind::encoder_decoder);
  const int64_t block = m->model_config.block_size;
  o.max_length = int_param(req, "max_length", block - 1);
  if (*o.max_length < 1 || *o.max_length > block - 1)
    fail(400,
         "max_length {} must be between 1 and {}: the decoder holds block_size = {} "
         "positions, <bos> and the output",
         *o.max_length, block - 1, block);
  cost::check_generation_fits(m->model_config, o.search.beam, block,
                              fmt::format("beam {}", o.search.beam));
  const std::vector<int32_t> source = m->vocab.encode(input, "input");
  const std::vector<generate::Hypothesis> hyps =
      generate::translate(dynamic_cast<nn::EncoderDecoderModel&>(*m->model), m->vocab, source, o);
  json out = json::array();
  for (const generate::Hypothesis& h : hyps)
    out.push_back(
        {{"text", m->vocab.decode(h.tokens)}, {"score", h.score}, {"log_prob", h.log_prob}});
  send_json(res, {{"checkpoint", checkpoint_name(*m)}, {"hypotheses", out}});
}

void fill(State& state, const httplib::Request& req, httplib::Response& res) {
  const std::string text = bounded_text(state, req, "text");
  const int64_t top_k = int_param(req, "top_k", 5);
  if (top_k < 1) fail(400, "top_k {} must be at least 1", top_k);

  const std::shared_ptr<void> place = enter_generation(state);
  const std::shared_ptr<LoadedModel> m = load_kind(state, req, nn::ModelKind::encoder);
  const std::string mask = text_param(req, "mask", m->config.data.mask_char);
  const std::u32string mask_chars = data::decode_utf8(mask, "mask");
  if (mask_chars.size() != 1) fail(400, "mask '{}' must be exactly one character", mask);
  const generate::Fill f =
      generate::fill_masks(dynamic_cast<nn::EncoderModel&>(*m->model), m->vocab, text,
                           mask_chars[0], std::min(top_k, m->vocab.num_chars()));
  json positions = json::array();
  for (const generate::FilledPosition& p : f.positions) {
    json candidates = json::array();
    for (const auto& [id, prob] : p.candidates) {
      std::string c;
      data::append_utf8(c, m->vocab.chars()[size_t(id)]);
      candidates.push_back({{"char", c}, {"prob", prob}});
    }
    positions.push_back({{"position", p.position}, {"candidates", candidates}});
  }
  send_json(res, {{"checkpoint", checkpoint_name(*m)}, {"text", f.text}, {"positions", positions}});
}

void attention(State& state, const httplib::Request& req, httplib::Response& res) {
  inspect::AttentionRequest a{.text = bounded_text(state, req, "text"),
                              .target = bounded_text(state, req, "target"),
                              .part = text_param(req, "part", "cross"),
                              .layer = int_param(req, "layer", -1),
                              .head = int_param(req, "head", -1),
                              .names = {.text = "text",
                                        .source = "text",
                                        .target = "target",
                                        .part = "part",
                                        .layer = "layer",
                                        .head = "head"}};
  const std::string format = text_param(req, "format", "json");
  if (format != "json" && format != "svg")
    fail(400, "format: expected json or svg, got '{}'", format);

  const std::shared_ptr<void> place = enter_generation(state);
  const Run run = find_run(state, req);
  const LoadedModel m = load_requested(state, run, req);
  use_generation_threads(state);
  plot::AttentionChart chart = inspect::probe_attention(*m.model, m.config, m.vocab, a);
  if (format == "svg") {
    chart.title += fmt::format(" of {}/{} ({} model)", run.name, checkpoint_name(m),
                               enum_name(m.config.model.kind));
    res.set_content(plot::attention_chart_svg(chart), "image/svg+xml");
    return;
  }
  json panels = json::array();
  for (const plot::AttentionPanel& p : chart.panels)
    panels.push_back({{"title", p.title}, {"weights", p.weights}});
  send_json(res, {{"checkpoint", checkpoint_name(m)},
                  {"title", chart.title},
                  {"subtitle", chart.subtitle},
                  {"row_labels", chart.row_labels},
                  {"col_labels", chart.col_labels},
                  {"panels_per_row", chart.panels_per_row},
                  {"panels", panels}});
}

}  // namespace

void add_model_routes(httplib::Server& http, State& state) {
  auto route = [&](const char* path,
                   void (*handler)(State&, const httplib::Request&, httplib::Response&)) {
    http.Get(path, [&state, handler](const httplib::Request& req, httplib::Response& res) {
      handler(state, req, res);
    });
  };
  route("/api/sample", sample);
  route("/api/translate", translate);
  route("/api/fill", fill);
  route("/api/attention", attention);
}

}  // namespace qkv::serve
