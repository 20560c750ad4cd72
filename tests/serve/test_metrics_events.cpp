// GET /api/metrics/events: metrics.jsonl followed as server-sent events while a run trains,
// including the rewrite a resumed run makes.
#include <doctest/doctest.h>

#include <condition_variable>
#include <mutex>

#include "serve_fixture.h"
#include "sse.h"

using namespace qkv;
using namespace qkv::testing;
using nlohmann::json;

namespace {

// Reads one event stream from a thread and hands its events over as they come.
class EventReader {
 public:
  EventReader(const TestServer& server, const std::string& path)
      : client_(server.client()), thread_([this, path] {
          client_.Get(path, [this](const char* data, size_t n) {
            std::lock_guard lock(mutex_);
            buffer_.append(data, n);
            for (Event& e : take_events(buffer_)) events_.push_back(std::move(e));
            changed_.notify_all();
            return !closing_;
          });
        }) {}
  ~EventReader() {
    closing_ = true;
    client_.stop();
    thread_.join();
  }
  // The next event, waiting up to 10 s for it; an event named "timeout" when none came.
  Event next() {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, std::chrono::seconds(10), [this] { return !events_.empty(); });
    if (events_.empty()) return {"timeout", nullptr};
    Event e = std::move(events_.front());
    events_.erase(events_.begin());
    return e;
  }

 private:
  httplib::Client client_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::string buffer_;
  std::vector<Event> events_;
  std::atomic<bool> closing_{false};
  std::thread thread_;
};

}  // namespace

TEST_CASE("serve: /api/metrics/events sends the log, then each line appended, then a rewrite") {
  TestRuns runs("serve_metrics_events");
  TestServer server(runs.root);
  const auto log = runs.root / "dec" / "metrics.jsonl";
  EventReader reader(server, "/api/metrics/events?run=dec");
  Event e = reader.next();
  CHECK(e.name == "metrics");
  CHECK(e.data["reset"] == true);
  CHECK(e.data["lines"].size() == 5);

  // A line arrives in two writes, as a trainer's might be read halfway: only the whole one counts.
  std::ofstream(log, std::ios::app) << "{\"iter\":3,\"lo" << std::flush;
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::ofstream(log, std::ios::app) << "ss\":3.25}\n";
  e = reader.next();
  CHECK(e.name == "metrics");
  CHECK(e.data["reset"] == false);
  CHECK(e.data["lines"] == json::array({{{"iter", 3}, {"loss", 3.25}}}));

  // A resumed run replaces the log with a shorter one.
  const auto tmp = runs.root / "dec" / "metrics.jsonl.tmp";
  TestRuns::write_file(tmp, "{\"iter\":0,\"loss\":4.5}\n");
  std::filesystem::rename(tmp, log);
  e = reader.next();
  CHECK(e.data["reset"] == true);
  CHECK(e.data["lines"] == json::array({{{"iter", 0}, {"loss", 4.5}}}));
}

TEST_CASE("serve: a run without metrics yet streams them once they appear") {
  TestRuns runs("serve_metrics_appear");
  TestServer server(runs.root);
  EventReader reader(server, "/api/metrics/events?run=seq");
  Event e = reader.next();
  CHECK(e.data["lines"].empty());
  TestRuns::write_file(runs.root / "seq" / "metrics.jsonl", "{\"iter\":0,\"loss\":2.0}\n");
  e = reader.next();
  CHECK(e.data["lines"].size() == 1);
}

TEST_CASE("serve: event streams beyond --max-streams are refused with 429") {
  TestRuns runs("serve_streams_busy");
  TestServer server(runs.root, {.max_streams = 1});
  EventReader reader(server, "/api/metrics/events?run=dec");
  CHECK(reader.next().name == "metrics");
  const Reply r = get(server, "/api/metrics/events?run=dec");
  CHECK(r.status == 429);
  CHECK(r.body["error"] ==
        "1 event streams are open, this server's limit (qkv serve --max-streams)");
}
