#include "serve/serve_fixture.h"

namespace qkv::testing {

TestServer::TestServer(const std::filesystem::path& runs_dir, serve::Limits limits)
    : server_(options(runs_dir, limits)),
      port_(server_.bind()),
      thread_([this] { server_.run(); }) {
  // The port is bound, so this waits in the backlog until run() accepts it.
  httplib::Client c = client();
  const httplib::Result r = c.Get("/api/runs");
  if (!r) throw std::runtime_error("the test server did not answer");
}

TestServer::~TestServer() {
  server_.stop();
  thread_.join();
}

httplib::Client TestServer::client() const {
  httplib::Client c("127.0.0.1", port_);
  c.set_url_encode(false);
  c.set_read_timeout(60);
  return c;
}

serve::ServeOptions TestServer::options(const std::filesystem::path& runs_dir, serve::Limits limits) {
  return {.runs_dir = runs_dir.string(),
          .host = "127.0.0.1",
          .port = 0,
          .limits = limits,
          .threads = 1,
          .precision = Precision::fp32,
          .poll_interval = std::chrono::milliseconds(20)};
}

std::string url_encode(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
      out += char(c);
    else
      out += fmt::format("%{:02X}", c);
  }
  return out;
}

Reply get(const TestServer& server, const std::string& path) {
  httplib::Client c = server.client();
  const httplib::Result r = c.Get(path);
  if (!r) return {};
  Reply reply{r->status, nullptr, r->body};
  if (r->get_header_value("Content-Type") == "application/json")
    reply.body = nlohmann::json::parse(r->body);
  return reply;
}

LockHolder::LockHolder(const std::filesystem::path& run) {
  const std::string path = (run / ".lock").string();
  int hold[2], ready[2];
  if (::pipe(hold) != 0 || ::pipe(ready) != 0) throw std::runtime_error("pipe");
  pid_ = ::fork();
  if (pid_ == 0) {
    ::close(hold[1]);  // or the read below never sees the parent close its end
    ::close(ready[0]);
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    struct flock l = {};
    l.l_type = F_WRLCK;
    l.l_whence = SEEK_SET;
    const char ok = fd >= 0 && ::fcntl(fd, F_SETLK, &l) == 0 ? '1' : '0';
    (void)!::write(ready[1], &ok, 1);
    char c;
    (void)!::read(hold[0], &c, 1);  // until the parent closes its end
    ::_exit(0);
  }
  ::close(hold[0]);
  ::close(ready[1]);
  hold_ = hold[1];
  char ok = '0';
  (void)!::read(ready[0], &ok, 1);
  ::close(ready[0]);
  if (ok != '1') throw std::runtime_error("the child could not lock " + path);
}

LockHolder::~LockHolder() {
  ::close(hold_);
  ::waitpid(pid_, nullptr, 0);
}

TestRuns::TestRuns(std::string_view name) : dir(name), root(dir.path() / "runs") {
  const io::Config dc = tiny_config(nn::ModelKind::decoder);
  save_run(root / "dec", dc, text, *make_model<nn::DecoderModel>(dc, text, 3));
  const io::Config ec = tiny_config(nn::ModelKind::encoder);
  save_run(root / "group" / "enc", ec, masked, *make_model<nn::EncoderModel>(ec, masked, 7));
  io::Config sc = tiny_config(nn::ModelKind::encoder_decoder);
  save_run(root / "seq", sc, pairs, *make_model<nn::EncoderDecoderModel>(sc, pairs, 5));
  for (const char* run : {"dec", "group/enc", "seq"})
    write_file(root / run / "config.toml", read_file(root / run / "checkpoint-0/config.toml"));
  write_file(root / "dec" / "metrics.jsonl",
             "{\"iter\":0,\"loss\":4.5}\n{\"iter\":0,\"val_loss\":4.25}\n"
             "{\"iter\":1,\"loss\":4.0}\n{\"iter\":2,\"loss\":3.5}\n"
             "{\"iter\":2,\"val_loss\":3.75}\n");
}

void TestRuns::write_file(const std::filesystem::path& p, std::string_view bytes) {
  std::ofstream(p, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

}  // namespace qkv::testing
