// What the route handlers of `qkv serve` share, and the helpers they answer with.
#pragma once

#include <httplib.h>

#include <atomic>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "run_table.h"
#include "runs_dir.h"
#include "server.h"

namespace qkv::serve {

// At most `capacity` holders at once: generations running, event streams open.
class Gate {
 public:
  explicit Gate(int64_t capacity) : capacity_(capacity) {}
  // A place held until the returned pointer's last copy goes, or null when all are taken.
  std::shared_ptr<void> try_enter();

 private:
  int64_t capacity_;
  std::shared_ptr<std::atomic<int64_t>> used_ = std::make_shared<std::atomic<int64_t>>(0);
};

struct Server::State {
  explicit State(ServeOptions o)
      : options(std::move(o)),
        runs(options.runs_dir),
        table(runs),
        generations(options.limits.max_generations),
        streams(options.limits.max_streams) {}
  ServeOptions options;
  RunsDir runs;
  RunTable table;
  Gate generations, streams;
  std::atomic<bool> stopping{false};
};
using State = Server::State;

// JSON that never throws on bytes that are not UTF-8 (a file name, a model's output).
std::string dump(const nlohmann::json& j);
void send_json(httplib::Response& res, const nlohmann::json& body, int status = 200);
// One server-sent event: "event: <name>\ndata: <json on one line>\n\n".
std::string sse_event(std::string_view name, const nlohmann::json& data);

// The run the "run" parameter names; HttpError 404 otherwise.
Run find_run(State& state, const httplib::Request& req);
// The checkpoint directory of run that the "checkpoint" parameter names (default latest);
// HttpError 404 when there is none by that name or it leaves the runs directory.
std::string find_checkpoint(State& state, const Run& run, const httplib::Request& req);

// Query parameters, or the fallback when absent; HttpError 400 for one that does not parse.
std::string text_param(const httplib::Request& req, const std::string& name,
                       std::string fallback = "");
int64_t int_param(const httplib::Request& req, const std::string& name, int64_t fallback);
double number_param(const httplib::Request& req, const std::string& name, double fallback);
// HttpError 400 "<name> <value> is above this server's limit of <limit> (qkv serve <flag>)".
void check_limit(const std::string& name, int64_t value, int64_t limit, std::string_view flag);

void add_run_routes(httplib::Server& http, State& state);
void add_model_routes(httplib::Server& http, State& state);

}  // namespace qkv::serve
