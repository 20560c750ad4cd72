// Reading a data file whole, with the error messages a user sees for a bad data.path.
#pragma once

#include <string>

namespace qkv::data {

// The file's bytes. Throws qkv::Error "data.path '<path>' does not exist; ..." (or is a
// directory, or cannot be read).
std::string read_data_file(const std::string& path);

}  // namespace qkv::data
