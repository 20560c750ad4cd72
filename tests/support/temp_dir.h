// A fresh directory under the build tree for one test's files, removed when the test ends.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>

namespace qkv::testing {

class TempDir {
 public:
  // The pid keeps concurrent runs of the same test binary apart.
  explicit TempDir(std::string_view name)
      : path_(std::filesystem::path(QKV_BINARY_DIR) / "test_tmp" /
              (std::string(name) + "-" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // Writes bytes exactly (binary mode) and returns the file's path.
  std::string write(std::string_view file, std::string_view bytes) const {
    const auto p = path_ / file;
    std::ofstream(p, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
    return p.string();
  }

 private:
  std::filesystem::path path_;
};

// A file's bytes (binary mode); empty when it cannot be read.
inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace qkv::testing
