// Clients that try to fool or stall `qkv serve`: Host names that only start like loopback (DNS
// rebinding), connections that send their request a byte at a time, a FIFO where metrics.jsonl
// should be, requests too long or of the wrong method. Each is answered with the right status,
// and a normal request meanwhile is answered at once. The bounds below are hang detectors, far
// above a normal answer's milliseconds and below the 5 s an I/O timeout would take.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <chrono>

#include "loopback.h"
#include "serve_fixture.h"

using namespace qkv;
using namespace qkv::testing;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kPrompt = std::chrono::seconds(2);

// A raw connection, to send what httplib's client would not.
class Raw {
 public:
  explicit Raw(int port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  }
  ~Raw() { ::close(fd_); }
  Raw(const Raw&) = delete;
  Raw& operator=(const Raw&) = delete;

  void send(std::string_view bytes) const {
    (void)!::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  }
  // What the server answered, read until it closes or `within` passes.
  std::string answer(std::chrono::milliseconds within = kPrompt) const {
    std::string out;
    const auto deadline = Clock::now() + within;
    char buf[4096];
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      pollfd p{fd_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, int(left.count())) <= 0) return out + "<timeout>";
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return out;
      out.append(buf, size_t(n));
    }
  }

 private:
  int fd_;
};

std::string status_line(const std::string& answer) { return answer.substr(0, answer.find("\r\n")); }

}  // namespace

TEST_CASE("serve: only an exact loopback Host passes the DNS-rebinding check") {
  for (const char* host : {"127.0.0.1", "127.0.0.1:8080", "localhost", "LocalHost:80",
                           "127.255.3.4", "[::1]", "[::1]:8080"}) {
    CAPTURE(host);
    CHECK(serve::is_loopback_host_header(host));
  }
  for (const char* host :
       {"127.0.0.1.evil.com", "127.evil.com", "127.0.0.1@evil.com", "localhost.evil.com",
        "evil.com", "", "127.1", "0x7f.0.0.1", "127.0.0.01", "::1", "[::1].evil.com",
        "[::1]:80x", "[::1", "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:80:80",
        "localhost:8080@evil.com", "[::ffff:127.0.0.1]", "128.0.0.1", "0.0.0.0", "localhost."}) {
    CAPTURE(host);
    CHECK(!serve::is_loopback_host_header(host));
  }
  TestRuns runs("serve_host");
  TestServer server(runs.root);
  for (const char* host : {"127.0.0.1.evil.com", "127.evil.com", "127.0.0.1@evil.com"}) {
    CAPTURE(host);
    Raw c(server.port());
    c.send(fmt::format("GET /api/runs HTTP/1.1\r\nHost: {}\r\n\r\n", host));
    CHECK(status_line(c.answer()) == "HTTP/1.1 403 Forbidden");
  }
}

TEST_CASE("serve: clients that send their request slowly do not hold up a normal request") {
  TestRuns runs("serve_slow");
  TestServer server(runs.root);
  // More than a worker each, and more than one client's share of waiting connections.
  std::vector<std::unique_ptr<Raw>> slow;
  for (int i = 0; i < 40; ++i) {
    slow.push_back(std::make_unique<Raw>(server.port()));
    slow.back()->send("G");
  }
  const auto t0 = Clock::now();
  const Reply r = get(server, "/api/runs");
  CHECK(r.status == 200);
  CHECK(Clock::now() - t0 < kPrompt);
  // The oldest, beyond one client's share, were closed with 408 to make room.
  CHECK(status_line(slow.front()->answer()) == "HTTP/1.1 408 Request Timeout");
}

TEST_CASE("serve: a FIFO in the runs directory is never opened") {
  TestRuns runs("serve_fifo");
  fs::create_directories(runs.root / "piped");
  REQUIRE(::mkfifo((runs.root / "piped" / "metrics.jsonl").c_str(), 0644) == 0);
  auto server = std::make_unique<TestServer>(runs.root);
  for (int i = 0; i < 3; ++i) {  // as many as would each have held a worker for good
    const auto t0 = Clock::now();
    const Reply list = get(*server, "/api/runs");
    CHECK(Clock::now() - t0 < kPrompt);
    REQUIRE(list.status == 200);
    const auto& piped = list.body["runs"][2];
    CHECK(piped["name"] == "piped");
    CHECK(piped["error"].get<std::string>().ends_with("metrics.jsonl: a FIFO, not a regular file"));
  }
  const Reply metrics = get(*server, "/api/metrics?run=piped");
  CHECK(metrics.status == 400);
  const auto t0 = Clock::now();
  server.reset();
  CHECK(Clock::now() - t0 < std::chrono::seconds(1));
}

TEST_CASE("serve: requests that break a limit get the status that says which") {
  TestRuns runs("serve_status");
  serve::Limits limits;
  TestServer server(runs.root, limits);
  const auto ask = [&](const std::string& request) {
    Raw c(server.port());
    c.send(request);
    return c.answer();
  };
  const std::string long_target = "/api/runs?x=" + std::string(12 * limits.max_text + 4096, 'a');
  CHECK(status_line(ask("GET " + long_target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")) ==
        "HTTP/1.1 414 URI Too Long");
  CHECK(status_line(ask("GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " +
                        std::string(20000, 'a') + "\r\n\r\n")) ==
        "HTTP/1.1 431 Request Header Fields Too Large");
  for (const char* method : {"POST", "PUT", "DELETE", "OPTIONS"}) {
    const std::string a = ask(fmt::format(
        "{} /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n", method));
    CHECK(status_line(a) == "HTTP/1.1 405 Method Not Allowed");
    CHECK(a.find("only reads (GET)") != std::string::npos);
  }
  CHECK(status_line(ask(
            "GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\n")) ==
        "HTTP/1.1 413 Content Too Large");
  CHECK(get(server, "/api/nothing").body["error"] == "no such endpoint: GET /api/nothing");

  // The longest prompt the limit allows, of 4-byte characters: 12 bytes each in the URL. It
  // reaches the model, whose vocabulary lacks them.
  std::string prompt;
  for (int64_t i = 0; i < limits.max_text; ++i) prompt += "\xF0\x9F\x98\x80";
  const Reply r = get(server, "/api/sample?run=dec&prompt=" + url_encode(prompt));
  CHECK(r.status == 400);
  CHECK(r.body["error"].get<std::string>().find("is not in the vocabulary") != std::string::npos);
  const Reply k = get(server, "/api/sample?run=dec&top_k=0");
  CHECK(k.status == 400);
  CHECK(k.body["error"] == "top_k 0 must be at least 1, as qkv sample --top-k");
}
