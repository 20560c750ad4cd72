#include "server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <new>

#include "front.h"
#include "http_error.h"
#include "loopback.h"
#include "page.h"
#include "server_state.h"

namespace qkv::serve {

using nlohmann::json;

std::shared_ptr<void> Gate::try_enter() {
  if (used_->fetch_add(1) >= capacity_) {
    used_->fetch_sub(1);
    return nullptr;
  }
  // The deleter holds the count too, so a place may outlive its Gate.
  return std::shared_ptr<void>(used_.get(), [used = used_](void*) { used->fetch_sub(1); });
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_json(httplib::Response& res, const json& body, int status) {
  res.status = status;
  res.set_content(dump(body), "application/json");
}

std::string sse_event(std::string_view name, const json& data) {
  return fmt::format("event: {}\ndata: {}\n\n", name, dump(data));
}

Run find_run(State& state, const httplib::Request& req) {
  const std::string name = req.get_param_value("run");
  if (name.empty()) fail(400, "give the run: ?run=NAME (GET /api/runs lists them)");
  std::optional<Run> run = state.runs.find(name);
  if (!run) fail(404, "no run '{}' in {}", name, state.runs.root().string());
  return std::move(*run);
}

std::string find_checkpoint(State& state, const Run& run, const httplib::Request& req) {
  const std::string which = text_param(req, "checkpoint", "latest");
  std::optional<std::string> dir;
  try {
    dir = state.runs.checkpoint(run, which);
  } catch (const Error& e) {
    fail(404, "{}", e.what());
  }
  if (!dir) fail(404, "run '{}' has no checkpoint '{}'", run.name, which);
  return *dir;
}

std::string text_param(const httplib::Request& req, const std::string& name, std::string fallback) {
  return req.has_param(name) ? req.get_param_value(name) : fallback;
}

int64_t int_param(const httplib::Request& req, const std::string& name, int64_t fallback) {
  if (!req.has_param(name)) return fallback;
  const std::string v = req.get_param_value(name);
  int64_t x = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (ec != std::errc() || end != v.data() + v.size())
    fail(400, "{}: expected a whole number, got '{}'", name, v.substr(0, 40));
  return x;
}

double number_param(const httplib::Request& req, const std::string& name, double fallback) {
  if (!req.has_param(name)) return fallback;
  const std::string v = req.get_param_value(name);
  double x = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (ec != std::errc() || end != v.data() + v.size() || !std::isfinite(x))
    fail(400, "{}: expected a number, got '{}'", name, v.substr(0, 40));
  return x;
}

void check_limit(const std::string& name, int64_t value, int64_t limit, std::string_view flag) {
  if (value > limit)
    fail(400, "{} {} is above this server's limit of {} (qkv serve {})", name, value, limit, flag);
}

namespace {

// The answer to a handler's exception: HttpError says its status, other qkv::Errors are bad
// input, and anything else is a bug, answered without taking the server down.
void answer_exception(const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
  try {
    std::rethrow_exception(ep);
  } catch (const HttpError& e) {
    send_json(res, {{"error", e.what()}}, e.status);
  } catch (const Error& e) {
    send_json(res, {{"error", e.what()}}, 400);
  } catch (const std::bad_alloc&) {
    send_json(res, {{"error", "out of memory"}}, 503);
  } catch (const std::exception& e) {
    spdlog::error("{} {}: internal error: {}", req.method, req.path, e.what());
    send_json(res, {{"error", fmt::format("internal error: {}", e.what())}}, 500);
  }
}

// What the front may read of a request. Every character of a prompt may take 12 bytes in the
// URL (4 UTF-8 bytes, each %XX), so the request line grows with --max-text.
FrontLimits front_limits(const Limits& l) {
  FrontLimits f;
  f.max_request_line = std::max<size_t>(f.max_request_line, size_t(12 * l.max_text + 2048));
  // Every open event stream and every generation holds a worker; quick requests get the rest.
  f.workers = size_t(l.max_streams + l.max_generations + 4);
  return f;
}

std::string error_text(const httplib::Request& req, int status) {
  switch (status) {
    case 404:
      return fmt::format("no such endpoint: {} {}", req.method, req.path);
    case 400:
      return "the request is malformed (its request line or a header)";
    default:
      return fmt::format("HTTP status {}", status);
  }
}

}  // namespace

Server::Server(ServeOptions options)
    : state_(std::make_unique<State>(std::move(options))),
      http_(std::make_unique<Front>(front_limits(state_->options.limits))) {
  // httplib's default also sets SO_REUSEPORT, which would let a second server share a port
  // that is taken; SO_REUSEADDR alone lets a restarted one bind at once.
  http_->set_socket_options([this](int sock) {
    const int on = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    listening_socket_ = sock;
  });
  http_->set_exception_handler(answer_exception);
  http_->set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.body.empty()) send_json(res, {{"error", error_text(req, res.status)}}, res.status);
  });
  // A page elsewhere can have a browser resolve its own name to 127.0.0.1 (DNS rebinding) and
  // read what a loopback server answers; a request that does not name this machine is refused.
  if (is_loopback(state_->options.host))
    http_->set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
      const std::string host = req.get_header_value("Host");
      if (is_loopback_host_header(host)) return httplib::Server::HandlerResponse::Unhandled;
      send_json(res,
                {{"error", fmt::format("Host '{}' is not this server: it answers only to "
                                       "localhost, 127.x.y.z and [::1]",
                                       host)}},
                403);
      return httplib::Server::HandlerResponse::Handled;
    });
  http_->Get("/", [](const httplib::Request&, httplib::Response& res) {
    // The page may talk to this server only, and run only its own inline script and style:
    // nothing is fetched from anywhere else.
    res.set_header("Content-Security-Policy",
                   "default-src 'none'; connect-src 'self'; img-src 'self' blob:; "
                   "script-src 'unsafe-inline'; style-src 'unsafe-inline'");
    res.set_content(page_html().data(), page_html().size(), "text/html; charset=utf-8");
  });
  add_run_routes(*http_, *state_);
  add_model_routes(*http_, *state_);
}

Server::~Server() = default;

int Server::bind() {
  const ServeOptions& o = state_->options;
  const int port = o.port == 0 ? http_->bind_to_any_port(o.host)
                               : (http_->bind_to_port(o.host, o.port) ? o.port : -1);
  QKV_CHECK(port > 0,
            "--host {} --port {}: cannot listen there (the port is taken, or the address is not "
            "one of this machine's)",
            o.host, o.port);
  // Debian's httplib listens with a backlog of 5, so a burst of clients waits a second for SYN
  // retries; a second listen() raises it.
  ::listen(listening_socket_, SOMAXCONN);
  return port;
}

void Server::run() { http_->serve(); }

void Server::stop() {
  state_->stopping = true;
  http_->stop_serving();
}

}  // namespace qkv::serve
