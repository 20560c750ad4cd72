// `qkv serve`: one page and a JSON API under /api/ over the runs in a directory, served over
// HTTP by cpp-httplib. It only reads: no request changes a run. The endpoints are documented in
// docs/serve.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "qkv/ops.h"

namespace qkv::serve {

class Front;

// What one request may ask for, each refused beyond with a 4xx and a JSON error.
struct Limits {
  int64_t max_tokens = 2000;    // tokens a decoder sample generates
  int64_t max_beam = 16;        // beam width of an encoder-decoder
  int64_t max_text = 2000;      // characters of a prompt, input or text
  int64_t max_generations = 2;  // requests running a model at once (the CPU is the limit)
  int64_t max_streams = 16;     // metrics event streams open at once (each holds a thread)
};

struct ServeOptions {
  std::string runs_dir;
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (see Server::bind)
  Limits limits;
  int threads = 1;  // threads of one generation
  Precision precision = Precision::fp32;
  std::chrono::milliseconds poll_interval{250};  // how often event streams read metrics.jsonl
};

class Server {
 public:
  // Throws qkv::Error when runs_dir is not a directory.
  explicit Server(ServeOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds host:port and returns the port (the one the OS chose for port 0). Throws qkv::Error
  // naming the address when it cannot.
  int bind();
  // Serves until stop(); call after bind().
  void run();
  // Ends run() from any thread, closing open event streams and stopping generations: run()
  // returns within a second or so, whatever the clients do.
  void stop();

  struct State;

 private:
  std::unique_ptr<State> state_;
  std::unique_ptr<Front> http_;
  int listening_socket_ = -1;  // httplib's, once bound
};

}  // namespace qkv::serve
