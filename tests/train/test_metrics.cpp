// metrics.jsonl on resume and on a full disk: the log is cut back to the resumed iteration, and
// nothing it held is lost when the disk cannot take a write.
#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>

#include "qkv/error.h"
#include "support/error_of.h"
#include "support/small_tmpfs.h"
#include "support/temp_dir.h"
#include "train/metrics.h"

using namespace qkv;
using namespace qkv::train;
using qkv::testing::error_of;
using qkv::testing::read_file;
using qkv::testing::SmallTmpfs;
using qkv::testing::TempDir;
namespace fs = std::filesystem;

namespace {

// Training lines for iterations [0, n) and an evaluation every 10, padded to a realistic size.
std::string log_of(int64_t n) {
  std::string text;
  for (int64_t i = 0; i < n; ++i) {
    if (i % 10 == 0) text += nlohmann::json{{"iter", i}, {"val_loss", 2.5}}.dump() + "\n";
    text += nlohmann::json{{"iter", i}, {"loss", 2.5}, {"pad", std::string(80, ' ')}}.dump() + "\n";
  }
  return text;
}

// The text of a log's appended line: its "time", checked to be now (within a minute), removed.
std::string without_time(const std::string& line) {
  nlohmann::json j = nlohmann::json::parse(line);
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  CHECK(j["time"].get<double>() <= now + 1);
  CHECK(j["time"].get<double>() > now - 60);
  j.erase("time");
  return j.dump() + "\n";
}

// The log's text, its last line without its "time".
std::string read_log(const fs::path& p) {
  const std::string text = read_file(p);
  const size_t last = text.rfind('\n', text.size() - 2) + 1;  // npos + 1 = 0: one line
  return text.substr(0, last) + without_time(text.substr(last));
}

}  // namespace

TEST_CASE("metrics log: a resume keeps the lines before its iteration and appends after them") {
  TempDir tmp("metrics-resume");
  const fs::path p = tmp.path() / "metrics.jsonl";
  std::ofstream(p) << log_of(30) << "{\"iter\": 30, \"lo";  // a line cut short by a crash
  {
    MetricsLog log(p.string(), 20, /*evaluated_at_from=*/true);
    log.append({{"iter", 20}, {"loss", 1.5}});
  }
  std::string expected = log_of(20);
  expected += nlohmann::json{{"iter", 20}, {"val_loss", 2.5}}.dump() + "\n";
  expected += "{\"iter\":20,\"loss\":1.5}\n";
  CHECK(read_log(p) == expected);
}

TEST_CASE("metrics log: a new run starts an empty log") {
  TempDir tmp("metrics-new");
  const fs::path p = tmp.path() / "metrics.jsonl";
  std::ofstream(p) << log_of(5);
  MetricsLog(p.string(), 0, false).append({{"iter", 0}, {"loss", 3.0}});
  CHECK(read_log(p) == "{\"iter\":0,\"loss\":3.0}\n");
}

TEST_CASE("metrics log: a resume on a full disk keeps the whole log and names the file") {
  SmallTmpfs disk("metrics-full-resume", 256 * 1024);
  if (!disk.usable()) return;
  const fs::path p = disk.path() / "metrics.jsonl";
  const std::string old = log_of(100);
  std::ofstream(p) << old;
  disk.fill();
  CHECK(error_of([&] { MetricsLog(p.string(), 50, false); }) ==
        p.string() + ": cannot write: No space left on device");
  CHECK(read_file(p) == old);
}

TEST_CASE("metrics log: an append the disk cannot take leaves the log as it was") {
  SmallTmpfs disk("metrics-full-append", 64 * 1024);
  if (!disk.usable()) return;
  const fs::path p = disk.path() / "metrics.jsonl";
  MetricsLog log(p.string(), 0, false);
  log.append({{"iter", 0}, {"loss", 3.0}});
  const std::string before = read_file(p);
  disk.fill();
  // Longer than what is left of the file's last page, so that part of it could be written.
  const nlohmann::json line = {{"iter", 1}, {"note", std::string(8000, 'x')}};
  CHECK(error_of([&] { log.append(line); }) ==
        p.string() + ": cannot append: No space left on device");
  CHECK(read_file(p) == before);
}
