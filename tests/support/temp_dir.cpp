#include "support/temp_dir.h"

namespace qkv::testing {

TempDir::TempDir(std::string_view name)
    : path_(std::filesystem::path(QKV_BINARY_DIR) / "test_tmp" /
            (std::string(name) + "-" + std::to_string(::getpid()))) {
  std::filesystem::remove_all(path_);
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string TempDir::write(std::string_view file, std::string_view bytes) const {
  const auto p = path_ / file;
  std::ofstream(p, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
  return p.string();
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace qkv::testing
