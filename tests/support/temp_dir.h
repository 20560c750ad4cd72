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
  explicit TempDir(std::string_view name);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // Writes bytes exactly (binary mode) and returns the file's path.
  std::string write(std::string_view file, std::string_view bytes) const;

 private:
  std::filesystem::path path_;
};

// A file's bytes (binary mode); empty when it cannot be read.
std::string read_file(const std::filesystem::path& p);

}  // namespace qkv::testing
