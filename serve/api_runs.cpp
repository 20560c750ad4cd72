// The runs and their metrics: GET /api/runs, /api/run, /api/metrics and the event stream
// /api/metrics/events that follows metrics.jsonl while a run trains.
#include <chrono>
#include <thread>

#include "http_error.h"
#include "metrics_tail.h"
#include "qkv/io/regular_file.h"
#include "server_state.h"

namespace qkv::serve {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// A quiet stream says something this often, so a closed connection is noticed and proxies
// keep it open.
constexpr auto kKeepAlive = std::chrono::seconds(10);

fs::path metrics_path(State& state, const Run& run) {
  const fs::path p = run.path / "metrics.jsonl";
  if (!state.runs.absent_or_inside(p)) fail(404, "run '{}' has no metrics.jsonl", run.name);
  return p;
}

// Sends the lines of metrics.jsonl as they come: the whole file first, then each append, as
// "metrics" events {"reset": bool, "lines": [...]}; reset means the file was rewritten.
void stream_metrics(State& state, const Run& run, httplib::Response& res) {
  std::shared_ptr<void> place = state.streams.try_enter();
  if (!place)
    fail(429, "{} event streams are open, this server's limit (qkv serve --max-streams)",
         state.options.limits.max_streams);
  auto tail = std::make_shared<MetricsTail>(metrics_path(state, run));
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream", [&state, tail, place](size_t, httplib::DataSink& sink) {
        try {
          bool first = true;
          auto quiet_since = std::chrono::steady_clock::now();
          while (!state.stopping) {
            if (!state.runs.absent_or_inside(tail->path())) return false;
            MetricsTail::Update u = tail->poll();
            if (first || !u.lines.empty() || u.reset) {
              const std::string e =
                  sse_event("metrics", {{"reset", first || u.reset}, {"lines", u.lines}});
              if (!sink.write(e.data(), e.size())) return false;
              first = false;
              quiet_since = std::chrono::steady_clock::now();
            } else if (std::chrono::steady_clock::now() - quiet_since > kKeepAlive) {
              if (!sink.write(": keep-alive\n\n", 14)) return false;
              quiet_since = std::chrono::steady_clock::now();
            }
            std::this_thread::sleep_for(state.options.poll_interval);
          }
          sink.done();
          return true;
        } catch (...) {  // nothing may escape into httplib's writer thread
          return false;
        }
      });
}

}  // namespace

void add_run_routes(httplib::Server& http, State& state) {
  http.Get("/api/runs", [&state](const httplib::Request&, httplib::Response& res) {
    json list;
    try {
      list = state.table.list();
    } catch (const Error& e) {  // RUNS_DIR cannot be read: the server's fault, not the request's
      fail(500, "{}", e.what());
    }
    list["root"] = state.runs.root().string();
    send_json(res, list);
  });
  http.Get("/api/run", [&state](const httplib::Request& req, httplib::Response& res) {
    const Run run = find_run(state, req);
    json s = state.table.summary(run);
    if (const auto config = state.runs.inside(run.path / "config.toml"))
      s["config_toml"] = io::read_regular_file(*config);
    send_json(res, s);
  });
  http.Get("/api/metrics", [&state](const httplib::Request& req, httplib::Response& res) {
    const Run run = find_run(state, req);
    MetricsTail tail(metrics_path(state, run));
    send_json(res, {{"run", run.name}, {"lines", tail.poll().lines}});
  });
  http.Get("/api/metrics/events", [&state](const httplib::Request& req, httplib::Response& res) {
    stream_metrics(state, find_run(state, req), res);
  });
}

}  // namespace qkv::serve
