// Every file qkv reads or writes is a regular file. Opening a FIFO blocks until someone opens
// the other end, a device answers with whatever it is (endless zeros, a full disk), and
// replacing either with a file destroys what was there; so each is refused, with one line
// naming the path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace qkv::io {

// Opens path for reading; throws qkv::Error "<path>: cannot open: ..." or "<path>: a FIFO,
// not a regular file" (a directory, device or socket likewise) without ever blocking. Symlinks
// are followed. The caller owns the returned descriptor.
int open_regular(const std::filesystem::path& path);

// Throws open_regular's error when path is not a regular file, without opening it.
void require_regular(const std::filesystem::path& path);

// The whole of a regular file (open_regular's errors, and read errors naming the path).
std::string read_regular_file(const std::filesystem::path& path);

// Bytes [at, at + n) of the open file fd into dst; throws qkv::Error naming path when a read
// fails or the file ends first.
void read_at(int fd, const std::string& path, uint64_t at, void* dst, size_t n);

// The regular file a write to path creates or replaces: path when it does not exist or is a
// regular file, a symlink's target when that is one (so the link stays a link). Throws
// qkv::Error naming path when it is, or points to, anything else, or is a symlink that
// resolves to nothing.
std::filesystem::path output_target(const std::filesystem::path& path);

}  // namespace qkv::io
