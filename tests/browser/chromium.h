// Headless Chromium driven through the DevTools protocol over --remote-debugging-pipe: JSON
// messages, each ending in a NUL byte, written to the browser's fd 3 and read from its fd 4.
// No WebSocket client, no other program: the browser tests need only Debian's chromium.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace qkv::testing {

class Chromium {
 public:
  struct JavaScriptError : std::runtime_error {
    using std::runtime_error::runtime_error;
  };

  // Starts the browser with an empty profile in profile_dir, and opens url in a tab.
  Chromium(const std::string& url, const std::filesystem::path& profile_dir) {
    int to_browser[2], from_browser[2];
    if (::pipe2(to_browser, O_CLOEXEC) != 0 || ::pipe2(from_browser, O_CLOEXEC) != 0)
      throw std::runtime_error("pipe");
    // Above 4, so that neither end is already the browser's fd 3 or 4 when they are moved there.
    for (int* fd : {&to_browser[0], &to_browser[1], &from_browser[0], &from_browser[1]}) {
      const int high = ::fcntl(*fd, F_DUPFD_CLOEXEC, 10);
      ::close(*fd);
      *fd = high;
    }
    posix_spawn_file_actions_t files;
    posix_spawn_file_actions_init(&files);
    posix_spawn_file_actions_addopen(&files, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&files, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&files, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&files, to_browser[0], 3);
    posix_spawn_file_actions_adddup2(&files, from_browser[1], 4);
    const std::vector<std::string> args = {QKV_CHROMIUM,
                                           "--headless=new",
                                           "--no-sandbox",
                                           "--disable-gpu",
                                           "--no-first-run",
                                           "--disable-extensions",
                                           "--remote-debugging-pipe",
                                           "--window-size=1400,1100",
                                           "--user-data-dir=" + profile_dir.string(),
                                           "about:blank"};
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, argv[0], &files, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&files);
    ::close(to_browser[0]);
    ::close(from_browser[1]);
    out_ = to_browser[1];
    in_ = from_browser[0];
    if (rc != 0) throw std::runtime_error("cannot start " + std::string(QKV_CHROMIUM));
    const std::string target = call("Target.createTarget", {{"url", url}})["targetId"];
    session_ =
        call("Target.attachToTarget", {{"targetId", target}, {"flatten", true}})["sessionId"];
  }
  ~Chromium() {
    ::close(out_);
    ::close(in_);
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  Chromium(const Chromium&) = delete;
  Chromium& operator=(const Chromium&) = delete;

  // The value of a JavaScript expression in the tab (awaited when it is a promise).
  nlohmann::json evaluate(const std::string& expression) {
    const nlohmann::json r = call(
        "Runtime.evaluate",
        {{"expression", expression}, {"awaitPromise", true}, {"returnByValue", true}}, session_);
    if (r.contains("exceptionDetails")) throw JavaScriptError(r["exceptionDetails"].dump());
    return r["result"].value("value", nlohmann::json());
  }
  // Waits up to `seconds` for the expression to be true; one that throws (the page is still
  // loading) is not true yet.
  bool wait_for(const std::string& expression, double seconds) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
      try {
        if (evaluate(expression) == true) return true;
      } catch (const JavaScriptError&) {
      }
      ::usleep(100'000);
    }
    return false;
  }
  // The page as PNG bytes, all of it.
  std::string screenshot() {
    const nlohmann::json r = call("Page.captureScreenshot",
                                  {{"format", "png"}, {"captureBeyondViewport", true}}, session_);
    return base64_decode(r["data"].get<std::string>());
  }

 private:
  // Sends one command and returns its result, skipping the events that come in between.
  nlohmann::json call(const std::string& method, const nlohmann::json& params,
                      const std::string& session = "") {
    nlohmann::json message = {{"id", ++id_}, {"method", method}, {"params", params}};
    if (!session.empty()) message["sessionId"] = session;
    const std::string text = message.dump() + '\0';
    for (size_t done = 0; done < text.size();) {
      const ssize_t n = ::write(out_, text.data() + done, text.size() - done);
      if (n <= 0) throw std::runtime_error("chromium closed its pipe");
      done += size_t(n);
    }
    for (;;) {
      const nlohmann::json reply = read_message();
      if (reply.value("id", -1) != id_) continue;
      if (reply.contains("error")) throw std::runtime_error(method + ": " + reply["error"].dump());
      return reply["result"];
    }
  }
  nlohmann::json read_message() {
    for (;;) {
      if (const size_t end = buffer_.find('\0'); end != std::string::npos) {
        nlohmann::json j = nlohmann::json::parse(buffer_.substr(0, end));
        buffer_.erase(0, end + 1);
        return j;
      }
      pollfd p{in_, POLLIN, 0};
      if (::poll(&p, 1, 30'000) <= 0) throw std::runtime_error("chromium did not answer in 30 s");
      char chunk[65536];
      const ssize_t n = ::read(in_, chunk, sizeof chunk);
      if (n <= 0) throw std::runtime_error("chromium closed its pipe");
      buffer_.append(chunk, size_t(n));
    }
  }
  static std::string base64_decode(const std::string& in) {
    std::string out;
    uint32_t bits = 0;
    int count = 0;
    for (char c : in) {
      const char* digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
      const char* at = std::char_traits<char>::find(digits, 64, c);
      if (!at) continue;  // '=' padding
      bits = (bits << 6) | uint32_t(at - digits);
      if ((count += 6) >= 8) out += char((bits >> (count -= 8)) & 0xFF);
    }
    return out;
  }

  pid_t pid_ = -1;
  int out_ = -1, in_ = -1;
  int id_ = 0;
  std::string session_, buffer_;
};

}  // namespace qkv::testing
