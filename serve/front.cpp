#include "front.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <nlohmann/json.hpp>

namespace qkv::serve {
namespace {

using Clock = std::chrono::steady_clock;

// Waits until fd can be read (POLLIN) or written (POLLOUT), at most timeout.
bool ready(int fd, short events, std::chrono::milliseconds timeout) {
  pollfd p{fd, events, 0};
  int n;
  while ((n = ::poll(&p, 1, int(timeout.count()))) < 0 && errno == EINTR) {
  }
  return n > 0;
}

// A worker's connection: the head the front read (rewritten) first, then the socket, each
// wait bounded by the I/O timeout.
class FdStream : public httplib::Stream {
 public:
  FdStream(int fd, std::string head, std::chrono::milliseconds timeout)
      : fd_(fd), head_(std::move(head)), timeout_(timeout) {}

  bool is_readable() const override { return at_ < head_.size() || ready(fd_, POLLIN, timeout_); }
  bool is_writable() const override { return ready(fd_, POLLOUT, timeout_); }
  ssize_t read(char* ptr, size_t size) override {
    if (at_ < head_.size()) {
      const size_t n = std::min(size, head_.size() - at_);
      std::copy_n(head_.data() + at_, n, ptr);
      at_ += n;
      return ssize_t(n);
    }
    if (!ready(fd_, POLLIN, timeout_)) return -1;
    return ::recv(fd_, ptr, size, 0);
  }
  ssize_t write(const char* ptr, size_t size) override {
    if (!ready(fd_, POLLOUT, timeout_)) return -1;
    return ::send(fd_, ptr, size, MSG_NOSIGNAL);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    address(::getpeername, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    address(::getsockname, ip, port);
  }
  int socket() const override { return fd_; }

 private:
  template <class Get>
  void address(Get get, std::string& ip, int& port) const {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    ip.clear();
    port = 0;
    if (get(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) return;
    char text[INET6_ADDRSTRLEN] = "";
    if (a.ss_family == AF_INET) {
      const auto& v4 = reinterpret_cast<const sockaddr_in&>(a);
      inet_ntop(AF_INET, &v4.sin_addr, text, sizeof text);
      port = ntohs(v4.sin_port);
    } else if (a.ss_family == AF_INET6) {
      const auto& v6 = reinterpret_cast<const sockaddr_in6&>(a);
      inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof text);
      port = ntohs(v6.sin6_port);
    }
    ip = text;
  }

  int fd_;
  std::string head_;
  size_t at_ = 0;
  std::chrono::milliseconds timeout_;
};

std::string peer_of(int fd) {
  std::string ip;
  int port = 0;
  FdStream(fd, "", {}).get_remote_ip_and_port(ip, port);
  return ip;
}

const char* reason(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    default: return "Error";
  }
}

// Answers a request the front refuses, as the routes answer errors ({"error": ...}), and
// closes the connection. Best effort: the client may be gone, and it is not waited for.
void refuse(int fd, int status, const std::string& message) {
  const std::string body = nlohmann::json{{"error", message}}.dump() + "\n";
  const std::string response = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}"
      "Connection: close\r\n\r\n{}",
      status, reason(status), body.size(), status == 405 ? "Allow: GET, HEAD\r\n" : "", body);
  (void)!::send(fd, response.data(), response.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  ::close(fd);
}

// Whether a request head announces a body: Transfer-Encoding, or a Content-Length but 0.
bool announces_body(std::string_view head) {
  std::string lower(head);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return char(std::tolower(c)); });
  if (lower.find("\r\ntransfer-encoding:") != std::string::npos) return true;
  const size_t at = lower.find("\r\ncontent-length:");
  if (at == std::string::npos) return false;
  size_t i = at + std::string_view("\r\ncontent-length:").size();
  while (i < lower.size() && (lower[i] == ' ' || lower[i] == '\t')) ++i;
  while (i < lower.size() && lower[i] == '0') ++i;
  return lower.compare(i, 2, "\r\n") != 0;
}

}  // namespace

struct Front::Waiting {
  int fd;
  std::string peer;
  Clock::time_point deadline;
  std::string bytes;
  int refuse_status = 0;  // set when the head broke a limit
  std::string refuse_message;
  bool complete = false;
  bool gone = false;
};

void Front::read_head(Waiting& w) {
  char buf[16384];
  for (;;) {
    const ssize_t n = ::recv(w.fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
      w.gone = true;
      return;
    }
    if (n < 0) break;
    w.bytes.append(buf, size_t(n));
    if (w.bytes.size() > limits_.max_request_line + limits_.max_header_bytes + 4) break;
  }
  const size_t line_end = w.bytes.find("\r\n");
  if (std::min(line_end, w.bytes.size()) > limits_.max_request_line) {
    w.refuse_status = 414;
    w.refuse_message = fmt::format(
        "the request line is longer than this server's limit of {} bytes (qkv serve --max-text "
        "sets it)",
        limits_.max_request_line);
    return;
  }
  if (line_end == std::string::npos) return;
  const size_t head_end = w.bytes.find("\r\n\r\n", line_end);
  const size_t header_bytes = std::min(head_end, w.bytes.size()) - line_end;
  if (header_bytes > limits_.max_header_bytes) {
    w.refuse_status = 431;
    w.refuse_message = fmt::format("the request's headers are longer than {} bytes in all",
                                   limits_.max_header_bytes);
    return;
  }
  w.complete = head_end != std::string::npos;
}

void Front::dispatch(Waiting& w) {
  const size_t line_end = w.bytes.find("\r\n"), head_end = w.bytes.find("\r\n\r\n") + 4;
  const std::string line = w.bytes.substr(0, line_end);
  const size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
  if (sp1 == std::string::npos || sp2 <= sp1)
    return refuse(w.fd, 400, "the request line is not METHOD TARGET VERSION");
  const std::string method = line.substr(0, sp1);
  if (method != "GET" && method != "HEAD")
    return refuse(w.fd, 405, fmt::format("{} is not served here: this server only reads (GET)",
                                         method.substr(0, 20)));
  std::string head = w.bytes.substr(0, head_end);
  // A body would keep a worker waiting for it; no endpoint reads one.
  if (announces_body(head))
    return refuse(w.fd, 413, "requests to this server carry no body: give parameters in the URL");
  // httplib's own request line limit is compiled in (8 KiB); the query string goes to the
  // handlers parsed, so a long prompt within --max-text gets through.
  const std::string target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const size_t q = target.find('?');
  httplib::Params params;
  if (q != std::string::npos) httplib::detail::parse_query_text(target.substr(q + 1), params);
  head.replace(0, line_end, method + " " + target.substr(0, q) + line.substr(sp2));
  workers_->enqueue([this, fd = w.fd, head = std::move(head), params = std::move(params)] {
    answer(fd, head, params);
  });
}

void Front::answer(int fd, std::string head, httplib::Params params) {
  {
    const std::lock_guard lock(mutex_);
    if (stopping_) {
      ::close(fd);
      return;
    }
    answering_.insert(fd);
  }
  FdStream stream(fd, std::move(head), limits_.io_timeout);
  bool closed = false;
  try {
    process_request(stream, /*close_connection=*/true, closed,
                    [&params](httplib::Request& req) { req.params = std::move(params); });
  } catch (...) {  // a worker must outlive any request
  }
  {
    const std::lock_guard lock(mutex_);
    answering_.erase(fd);
  }
  ::close(fd);
}

void Front::accept_all(std::list<Waiting>& waiting) {
  const int listener = svr_sock_;
  for (;;) {
    const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0 && errno == EINTR) continue;
    if (fd < 0 && (errno == EMFILE || errno == ENFILE) && !waiting.empty()) {
      ::close(waiting.front().fd);  // out of descriptors: the oldest waiting one makes room
      waiting.pop_front();
      continue;
    }
    if (fd < 0) return;
    const std::string peer = peer_of(fd);
    const auto same = [&peer](const Waiting& w) { return w.peer == peer; };
    std::list<Waiting>::iterator drop = waiting.end();
    if (size_t(std::count_if(waiting.begin(), waiting.end(), same)) >=
        limits_.max_waiting_per_client)
      drop = std::find_if(waiting.begin(), waiting.end(), same);
    else if (waiting.size() >= limits_.max_waiting)
      drop = waiting.begin();
    if (drop != waiting.end()) {
      refuse(drop->fd, 408,
             "too many connections wait to send their request; this one waited longest");
      waiting.erase(drop);
    }
    waiting.push_back({.fd = fd, .peer = peer, .deadline = Clock::now() + limits_.head_deadline});
  }
}

void Front::serve() {
  const int listener = svr_sock_;
  ::fcntl(listener, F_SETFL, ::fcntl(listener, F_GETFL) | O_NONBLOCK);
  workers_ = std::make_unique<httplib::ThreadPool>(limits_.workers);
  std::list<Waiting> waiting;  // oldest first
  std::vector<pollfd> fds;
  while (!stopping_) {
    fds.assign({{listener, POLLIN, 0}, {wake_, POLLIN, 0}});
    Clock::time_point next = Clock::now() + std::chrono::seconds(1);
    for (const Waiting& w : waiting) {
      fds.push_back({w.fd, POLLIN, 0});
      next = std::min(next, w.deadline);
    }
    const auto wait = std::chrono::ceil<std::chrono::milliseconds>(next - Clock::now());
    if (::poll(fds.data(), fds.size(), int(std::max<int64_t>(0, wait.count()))) < 0 &&
        errno != EINTR)
      break;
    if (stopping_) break;
    const auto now = Clock::now();
    size_t i = 2;
    for (auto it = waiting.begin(); it != waiting.end(); ++i) {
      Waiting& w = *it;
      if (fds[i].revents) read_head(w);
      if (w.gone) {
        ::close(w.fd);
      } else if (w.refuse_status) {
        refuse(w.fd, w.refuse_status, w.refuse_message);
      } else if (w.complete) {
        dispatch(w);
      } else if (now >= w.deadline) {
        refuse(w.fd, 408,
               fmt::format("the request was not sent within {} s of connecting",
                           limits_.head_deadline.count() / 1000.0));
      } else {
        ++it;
        continue;
      }
      it = waiting.erase(it);
    }
    if (fds[0].revents & POLLIN) accept_all(waiting);
  }
  ::close(svr_sock_.exchange(INVALID_SOCKET));
  for (const Waiting& w : waiting) ::close(w.fd);
  {
    const std::lock_guard lock(mutex_);
    for (const int fd : answering_) ::shutdown(fd, SHUT_RDWR);
  }
  workers_->shutdown();
}

void Front::stop_serving() {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  const uint64_t one = 1;
  (void)!::write(wake_, &one, sizeof one);
}

Front::Front(FrontLimits limits) : limits_(limits), wake_(::eventfd(0, EFD_CLOEXEC)) {}

Front::~Front() { ::close(wake_); }

}  // namespace qkv::serve
