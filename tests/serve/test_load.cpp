// A bounded load: many clients sampling at once against a server that runs two generations at
// a time. Every answer is a whole stream or a 429, and nothing is left behind.
#include <doctest/doctest.h>

#include "serve_fixture.h"
#include "sse.h"

using namespace qkv;
using namespace qkv::testing;

namespace {

size_t open_descriptors() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

}  // namespace

TEST_CASE("serve: concurrent samples are whole streams or 429s; no descriptor is left open") {
  TestRuns runs("serve_load");
  constexpr int kClients = 6, kRequests = 5;
  std::atomic<int> whole{0}, refused{0}, other{0};
  const size_t fds_before = open_descriptors();
  {
    TestServer server(runs.root, {.max_generations = 2});
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c)
      clients.emplace_back([&, c] {
        for (int i = 0; i < kRequests; ++i) {
          httplib::Client client = server.client();
          const httplib::Result r = client.Get(
              fmt::format("/api/sample?run=dec&prompt=the&max_tokens=40&seed={}", c * 100 + i));
          std::string text = r ? r->body : "";
          const std::vector<Event> events = take_events(text);
          if (r && r->status == 200 && events.size() == 41 && events.back().name == "done")
            ++whole;
          else if (r && r->status == 429)
            ++refused;
          else
            ++other;
        }
      });
    for (std::thread& t : clients) t.join();
    CHECK(other == 0);
    CHECK(whole > 0);
    CHECK(whole + refused == kClients * kRequests);
    // Every place was given back: as many samples as the limit run again at once.
    std::vector<std::thread> again;
    std::atomic<int> ok{0};
    for (int i = 0; i < 2; ++i)
      again.emplace_back([&] {
        httplib::Client client = server.client();
        const httplib::Result r = client.Get("/api/sample?run=dec&max_tokens=5");
        ok += r && r->status == 200;
      });
    for (std::thread& t : again) t.join();
    CHECK(ok == 2);
  }
  CHECK(open_descriptors() == fds_before);
}
