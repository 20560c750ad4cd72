// Reading data files; every error names the path and the config key it came from.
#include "data/data_file.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "qkv/error.h"

namespace qkv::data {

std::string read_data_file(const std::string& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  QKV_CHECK(std::filesystem::exists(status),
            "data.path '{}' does not exist; set data.path, or make a corpus with a script in data/ "
            "(see data/README.md)",
            path);
  QKV_CHECK(!std::filesystem::is_directory(status),
            "data.path '{}' is a directory; it must name a text file", path);
  // A FIFO would block the read forever and a device such as /dev/zero never ends.
  QKV_CHECK(std::filesystem::is_regular_file(status),
            "data.path '{}' is not a regular file (a FIFO, device or socket); it must name a "
            "text file",
            path);
  std::ifstream in(path, std::ios::binary);
  QKV_CHECK(in, "data.path '{}' cannot be opened ({})", path, std::strerror(errno));
  std::ostringstream bytes;
  bytes << in.rdbuf();
  QKV_CHECK(!in.bad(), "data.path '{}' cannot be read ({})", path, std::strerror(errno));
  return std::move(bytes).str();
}

}  // namespace qkv::data
