// Replacing a file whole: a reader (a browser showing loss.svg during training) sees the old
// content or the new one, never half a file.
#pragma once

#include <string>
#include <string_view>

namespace qkv::train {

// Writes bytes to a temporary file beside `path`, then renames it over `path`. Throws
// qkv::Error naming the path when either step fails.
void write_file_atomically(const std::string& path, std::string_view bytes);

}  // namespace qkv::train
