// The connections of `qkv serve`, accepted and read here rather than by httplib's own loop, so
// that a slow client holds no worker: one thread reads every request's head at once (poll),
// each within a deadline from its connection, answers a request that breaks a limit itself
// (408, 414, 431, 405), and hands only a complete request to a worker, where httplib's router
// (the routes registered on this class) answers it on a connection that then closes.
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <list>
#include <memory>
#include <mutex>
#include <set>
#include <string>

namespace qkv::serve {

struct FrontLimits {
  std::chrono::milliseconds head_deadline{5000};  // the request line and headers, from connecting
  std::chrono::milliseconds io_timeout{5000};     // each wait of a worker to read or write
  size_t max_request_line = 8192;                 // beyond: 414
  size_t max_header_bytes = 16384;                // all the header lines; beyond: 431
  // Connections of one address still sending their head: a new one beyond this closes that
  // address's oldest, so a client's own normal request always gets in.
  size_t max_waiting_per_client = 16;
  size_t max_waiting = 256;  // of all clients, likewise
  size_t workers = 8;
};

class Front : public httplib::Server {
 public:
  explicit Front(FrontLimits limits);
  ~Front() override;

  // Serves on the socket bind_to_port() made until stop_serving(); then every connection is
  // closed and every worker has returned.
  void serve();
  // From any thread: serve() returns once the workers' requests return, which they do at their
  // next read or write (their connections are shut down).
  void stop_serving();

 private:
  struct Waiting;
  void accept_all(std::list<Waiting>& waiting);
  void read_head(Waiting& w);
  void dispatch(Waiting& w);
  void answer(int fd, std::string head, httplib::Params params);

  FrontLimits limits_;
  std::atomic<bool> stopping_{false};
  int wake_ = -1;  // an eventfd that stop_serving() writes to end serve()'s poll
  std::unique_ptr<httplib::TaskQueue> workers_;
  std::mutex mutex_;
  std::set<int> answering_;  // connections a worker holds
};

}  // namespace qkv::serve
