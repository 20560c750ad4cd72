// The serve tests' setting: a runs directory of small random models (generate/models.h), a
// qkv serve on a loopback port the OS chose, and httplib's client to ask it.
#pragma once

#include <fcntl.h>
#include <httplib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "generate/models.h"
#include "server.h"
#include "support/temp_dir.h"

namespace qkv::testing {

// Serves runs_dir from a thread until destroyed.
class TestServer {
 public:
  explicit TestServer(const std::filesystem::path& runs_dir, serve::Limits limits = {});
  ~TestServer();
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  int port() const { return port_; }
  // Requests go out as written (no re-encoding), so the tests control every byte of the path.
  httplib::Client client() const;

 private:
  static serve::ServeOptions options(const std::filesystem::path& runs_dir, serve::Limits limits);
  serve::Server server_;
  int port_;
  std::thread thread_;
};

// Percent-encodes everything but unreserved characters, as a browser's encodeURIComponent.
std::string url_encode(std::string_view s);

struct Reply {
  int status = 0;
  nlohmann::json body;
  std::string text;
};

Reply get(const TestServer& server, const std::string& path);

// Holds RUN/.lock as a running `qkv train` does, from a child process: a process never sees its
// own record lock as held. The child only makes async-signal-safe calls, as a fork from a
// threaded process must.
class LockHolder {
 public:
  explicit LockHolder(const std::filesystem::path& run);
  ~LockHolder();
  LockHolder(const LockHolder&) = delete;
  LockHolder& operator=(const LockHolder&) = delete;
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int hold_ = -1;
};

// A decoder run, an encoder run and an encoder-decoder run of random tiny models, each with a
// checkpoint-0 and the metrics.jsonl given.
struct TestRuns {
  TempDir dir;
  std::filesystem::path root;
  data::Vocab text = text_vocab(), masked = mask_vocab(), pairs = pair_vocab();

  explicit TestRuns(std::string_view name);
  static void write_file(const std::filesystem::path& p, std::string_view bytes);
};

}  // namespace qkv::testing
