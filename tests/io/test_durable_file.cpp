// Replacing a file whole: the new content, or on any failure the old one and no leftovers.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <algorithm>
#include <iterator>
#include <vector>

#include "qkv/error.h"
#include "qkv/io/durable_file.h"
#include "support/small_tmpfs.h"
#include "support/temp_dir.h"

using namespace qkv;
using qkv::testing::SmallTmpfs;
using qkv::testing::read_file;
using qkv::testing::TempDir;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

TEST_CASE("replace_file: the file holds the new bytes and no temporary file is left") {
  TempDir tmp("replace-file");
  const fs::path p = tmp.path() / "log.txt";
  io::replace_file(p, "first\n");
  io::replace_file(p, "second, longer\n");
  CHECK(read_file(p) == "second, longer\n");
  CHECK(names_in(tmp.path()) == std::vector<std::string>{"log.txt"});
}

TEST_CASE("replace_file: a full disk keeps the old file whole and says which file and why") {
  SmallTmpfs disk("replace-file-full", 64 * 1024);
  if (!disk.usable()) return;
  const fs::path p = disk.path() / "metrics.jsonl";
  const std::string old(6000, 'o');
  io::replace_file(p, old);
  disk.fill();
  std::string error;
  try {
    io::replace_file(p, std::string(9000, 'n'));
  } catch (const Error& e) {
    error = e.what();
  }
  CHECK(error == p.string() + ": cannot write: No space left on device");
  CHECK(read_file(p) == old);
  CHECK(names_in(disk.path()) == std::vector<std::string>{"filler", "metrics.jsonl"});
}

TEST_CASE("replace_file: a directory that does not exist is one error with the path") {
  TempDir tmp("replace-file-nodir");
  const fs::path p = tmp.path() / "missing" / "loss.svg";
  std::string error;
  try {
    io::replace_file(p, "<svg/>");
  } catch (const Error& e) {
    error = e.what();
  }
  CHECK(error == p.string() + ": cannot create: No such file or directory");
}
